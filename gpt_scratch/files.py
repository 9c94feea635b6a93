"""Writing files so that a failure never leaves a half-written destination.

`atomic_folder` is the one way gpt_scratch writes a folder: everything goes into a temporary folder beside the
destination, which replaces the destination whole once complete, and is removed if anything fails on the way.
"""

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(dst: Path, overwrite: bool) -> Iterator[Path]:
    """A fresh folder beside `dst`, renamed to `dst` once the block completes (removed if it fails)."""
    if (dst.exists() or dst.is_symlink()) and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --overwrite (overwrite=True) to replace it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{secrets.token_hex(4)}.partial"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if dst.exists() or dst.is_symlink():
            if not overwrite:
                raise FileExistsError(f"{dst} appeared while converting; pass --overwrite to replace it")
            old = dst.parent / f".{dst.name}.{secrets.token_hex(4)}.old"
            os.rename(dst, old)
        try:
            os.rename(tmp, dst)
        except OSError:
            if old is not None:
                os.rename(old, dst)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()


__all__ = ["atomic_folder"]
