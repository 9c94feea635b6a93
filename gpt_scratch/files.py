"""Writing folders so that a failure never leaves a half-written destination.

`atomic_folder` is the one way gpt_scratch writes a folder (`convert`, `save_pretrained` of the model and the
tokenizer, `write_gpt2_vocab_files`, `train`): everything goes into a temporary folder beside the destination, which
takes the destination's place whole once complete. Whatever stops the writer (an exception, a full disk, Ctrl-C)
removes the temporary folder and leaves the destination as it was; a process killed outright leaves only the
temporary folder, which the next write to the same destination removes.

On Linux the swap is one `renameat2(RENAME_EXCHANGE)`, so the destination always names a complete folder, old or new.
Elsewhere (or on a filesystem without it) it is two renames, and a write killed between them leaves the old folder
under its temporary name, which the next write puts back before anything else.
"""

import ctypes
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_file", "atomic_folder", "check_destination"]

logger = logging.getLogger(__name__)

# Temporary folders are named `.<destination>.<host>-<pid>-<random>.partial` (or `.old`, the replaced folder during a
# two-rename swap), so that a later write can tell its own leftovers from a save still running in another process.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


@contextmanager
def atomic_folder(dst: str | os.PathLike, overwrite: bool = False, *,
                  carry_over: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """A fresh, empty folder to write into, which replaces `dst` whole when the block completes.

    overwrite: replace an existing `dst`; without it an existing `dst` is a FileExistsError.
    carry_over: update `dst` rather than replace it: the entries of the old `dst` that the block did not write and
        for which `carry_over(name)` is true are carried into the new folder (hard links where the filesystem allows,
        so they are neither copied nor modified). `save_pretrained` keeps a folder's tokenizer and other files this
        way and drops the old weight shards. A `dst` that is a symbolic link is followed, and a `dst` that is a
        regular file is an error.

    `dst` may be the working directory (or hold it): the process is moved into the new folder. A `dst` that cannot be
    renamed (a mount point) or whose parent is read-only is updated in place instead, one rename per entry.

    Raises:
        FileExistsError: `dst` exists and `overwrite` is False.
        NotADirectoryError: with `carry_over`, `dst` is a regular file.
        PermissionError: the destination cannot be written (the message names it and the folder that refused).
        OSError: writing failed part way (a full disk, say): the message names `dst`, which is left as it was.
    """
    dst = Path(dst).expanduser().absolute()
    if carry_over is not None and dst.is_symlink() and dst.is_dir():
        dst = Path(os.path.realpath(dst))
    if carry_over is not None and dst.exists() and not dst.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{dst} is a file, not a folder: pass a folder's path (a missing "
                                                f"one is created)")
    check_destination(dst, overwrite)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(dst, err) from None
    _remove_leftovers(dst)
    in_place = dst.is_dir() and not dst.is_symlink() and (os.path.ismount(dst) or not os.access(dst.parent, os.W_OK))
    tmp = (dst if in_place else dst.parent) / f".{dst.name or 'folder'}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp = tmp.with_name(tmp.name + ".partial")
    try:
        tmp.mkdir()
    except OSError as err:
        raise _write_error(dst, err) from None
    if in_place:
        logger.warning("%s is a mount point or its parent is read-only: its entries are replaced one by one, not the "
                       "folder whole", dst)
    try:
        yield tmp
        if carry_over is not None and dst.is_dir() and not in_place:
            _carry_over(dst, tmp, carry_over)
        if in_place:
            _replace_entries(tmp, dst, carry_over or (lambda name: False))
        else:
            _swap_in(tmp, dst, overwrite)
    except BaseException as err:
        # Writers report a full disk in their own words, not as an OSError (safetensors and tokenizers quote the
        # system's message; torch.save does not, but leaves the disk full): a ValueError or TypeError is about the
        # input whatever the disk.
        full = isinstance(err, Exception) and not isinstance(err, (ValueError, TypeError, OSError)) and (
            os.strerror(errno.ENOSPC) in str(err) or os.strerror(errno.EDQUOT) in str(err) or _disk_full(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise OSError(errno.ENOSPC, f"could not write {dst}: no space left on the disk ({err}); {dst} was left "
                                        f"as it was") from err
        if isinstance(err, OSError) and (err.errno in _FULL_DISK_ERRNOS | _DENIED_ERRNOS
                                         or str(err.filename).startswith(str(tmp))):
            raise _write_error(dst, err) from err
        raise


def check_destination(dst: str | os.PathLike, overwrite: bool) -> None:
    """The checks `atomic_folder` starts with, for a caller to run before any work: `dst` is new (or `overwrite`),
    and the folder it will be written in (its nearest existing parent) is writable.

    Raises:
        FileExistsError: `dst` exists and `overwrite` is False.
        PermissionError: the folder `dst` would be written in cannot be written (read-only, or not ours).
    """
    dst = Path(dst).expanduser().absolute()
    if _exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --overwrite (overwrite=True) to replace it")
    parent = dst.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK) and not (dst.is_dir() and os.access(dst, os.W_OK | os.X_OK)):
        read_only = hasattr(os, "statvfs") and os.statvfs(parent).f_flag & os.ST_RDONLY
        why = "on a read-only filesystem" if read_only else "not writable (permission denied)"
        raise PermissionError(errno.EROFS if read_only else errno.EACCES,
                              f"cannot write {dst}: {parent} is {why}; choose a folder you can write to")


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _write_error(dst: Path, err: OSError) -> OSError:
    """`err` (of the same class) with a message that names the destination and says it was left as it was."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in _DENIED_ERRNOS:
        message = f"cannot write {dst}: {err.strerror or err}{where}; choose a folder you can write to"
    else:
        message = f"could not write {dst}: {err.strerror or err}{where}; {dst} was left as it was"
    return type(err)(err.errno, message) if err.errno is not None else OSError(message)


def _disk_full(path: Path) -> bool:
    """Whether the filesystem holding `path` is (almost) out of space, as a writer that just failed leaves it."""
    try:
        stat = os.statvfs(path)
    except (OSError, AttributeError):  # gone already, or no statvfs (Windows)
        return False
    blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail  # root may write into the reserved blocks
    return blocks * stat.f_frsize < 2**20


def _remove_leftovers(dst: Path) -> None:
    """Remove the temporary folders that writes to `dst` killed on this machine left behind, and put back a folder a
    two-rename swap had moved aside when it was killed."""
    pattern = re.compile(rf"\.{re.escape(dst.name)}\.{_HOST}-(\d+)-[0-9a-f]{{8}}\.(partial|old)")
    leftovers = [(path, int(m[1]), m[2]) for path in _entries(dst.parent) if (m := pattern.fullmatch(path.name))]
    leftovers += [(path, int(m[1]), "partial") for path in _entries(dst) if dst.is_dir()
                  and (m := re.fullmatch(rf"\.{re.escape(dst.name)}\.{_HOST}-(\d+)-[0-9a-f]{{8}}\.partial", path.name))]
    for path, pid, kind in leftovers:
        if pid == os.getpid() or _running(pid):
            continue
        if kind == "old" and not _exists(dst):
            logger.warning("restoring %s, which a write killed part way had moved to %s", dst, path.name)
            os.rename(path, dst)
            continue
        logger.info("removing %s, left by a write to %s that was killed", path, dst)
        _remove(path)


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _carry_over(old: Path, new: Path, keep: Callable[[str], bool]) -> None:
    """Hard-link (or copy) the entries of `old` that `new` lacks and `keep` accepts into `new`."""
    written = {path.name for path in new.iterdir()}
    for entry in old.iterdir():
        if entry.name in written or not keep(entry.name):
            continue
        target = new / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)
    shutil.copymode(old, new)


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


# renameat2(2) flags; glibc 2.28+ has the function, Linux 3.15+ the system call (not every filesystem supports it).
_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """rename(src, dst) with renameat2's flags; False where the system or filesystem does not support them."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(dst))


def _swap_in(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Put the complete folder `tmp` in the place of `dst` (which may exist), and remove what `dst` was."""
    cwd = _cwd_inside(dst)
    if not _exists(dst):
        try:
            moved = _renameat2(tmp, dst, _RENAME_NOREPLACE)
        except FileExistsError:
            moved = False
        if not moved and not _exists(dst):
            os.rename(tmp, dst)
            moved = True
        if moved:
            return
    if not overwrite:
        raise FileExistsError(f"{dst} appeared while writing it; pass --overwrite (overwrite=True) to replace it")
    if _renameat2(tmp, dst, _RENAME_EXCHANGE):
        _remove(tmp)  # holds the old destination now
    else:
        old = tmp.with_suffix(".old")
        os.rename(dst, old)
        try:
            os.rename(tmp, dst)
        except BaseException:
            os.rename(old, dst)
            raise
        _remove(old)
    if cwd is not None:
        os.chdir(cwd)  # the process stood in the replaced folder: move it into the new one


def _cwd_inside(dst: Path) -> str | None:
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    return cwd if cwd == str(dst) or cwd.startswith(str(dst) + os.sep) else None


def _replace_entries(tmp: Path, dst: Path, keep: Callable[[str], bool]) -> None:
    """Move what was written in `tmp` (inside `dst`) into `dst`, entry by entry, then drop the old entries that were
    not rewritten and that `keep` rejects. For a `dst` that cannot be swapped whole."""
    written = [path.name for path in tmp.iterdir()]
    trash = tmp / ".replaced"
    trash.mkdir()
    for name in written:
        if (dst / name).is_dir() and not (dst / name).is_symlink():
            os.rename(dst / name, trash / name)  # os.replace cannot replace a non-empty folder
        os.replace(tmp / name, dst / name)
    for entry in _entries(dst):
        if entry.name not in written and entry != tmp and not keep(entry.name):
            _remove(entry)
    _remove(tmp)


@contextmanager
def atomic_file(dst: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside `dst` to write one file to (a GGUF file, say), renamed onto `dst` in one `os.replace`
    when the block completes and removed if it fails: `dst` is always the old file or the complete new one.

    Raises:
        FileExistsError: `dst` exists and `overwrite` is False.
        IsADirectoryError: `dst` is a folder.
        PermissionError / OSError: as `atomic_folder`, naming `dst`, which is left as it was.
    """
    dst = Path(dst).expanduser().absolute()
    if dst.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{dst} is a folder; pass the path of the file to write")
    if _exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --overwrite (overwrite=True) to replace it")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(dst, err) from None
    _remove_leftovers(dst)
    tmp = dst.parent / f".{dst.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        yield tmp
        if _exists(dst) and not overwrite:
            raise FileExistsError(f"{dst} appeared while writing it; pass --overwrite (overwrite=True) to replace it")
        os.replace(tmp, dst)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in _FULL_DISK_ERRNOS | _DENIED_ERRNOS:
            raise _write_error(dst, err) from err
        raise
