"""GPT-2's tokenizer as a plain transformers tokenizer, built from tiktoken's ranks.

tiktoken's "gpt2" encoding is the source of truth. Its ranks become a `tokenizers` byte-level BPE
through transformers' own `TikTokenConverter`, given GPT-2's split pattern, and the result is wrapped
in `TokenizersBackend` (alias `PreTrainedTokenizerFast`). `save_pretrained` therefore writes only
`tokenizer.json` + `tokenizer_config.json`, which `AutoTokenizer` loads without any custom code. (`load_tokenizer`
returns `GPTScratchTokenizer`, a `TokenizersBackend` whose save is atomic and whose saved folder names
`TokenizersBackend`.)
"""

import base64
import functools
import hashlib
import inspect
import json
import logging
import os
from pathlib import Path

from tokenizers import Tokenizer
from transformers import TokenizersBackend
from transformers.convert_slow_tokenizer import TikTokenConverter, bytes_to_unicode

from .files import atomic_folder

__all__ = [
    "ENDOFTEXT",
    "GPT2_SPLIT_PATTERN",
    "GPT2_TIKTOKEN_SHA256",
    "GPTScratchTokenizer",
    "load_tokenizer",
    "load_tiktoken_encoding",
    "register_auto_tokenizer",
    "write_gpt2_vocab_files",
]

# sha256 of OpenAI's r50k_base.tiktoken, the same hash tiktoken_ext/openai_public.py pins.
GPT2_TIKTOKEN_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"

# The pattern of OpenAI's GPT-2 release (tiktoken's r50k_pat_str is an equivalent, faster spelling).
# TikTokenConverter's default is the cl100k-style pattern: case-insensitive contractions ("DON'T"),
# digits in groups of three, punctuation that swallows newlines. None of that is GPT-2.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ENDOFTEXT = "<|endoftext|>"
_NUM_RANKS = 50256  # mergeable tokens; <|endoftext|> comes after them, as id 50256
_PACKAGED_RANKS = Path(__file__).with_name("gpt2.tiktoken")
_EXPECTED_FILES = "a gpt2.tiktoken ranks file, or encoder.json with vocab.bpe beside it"

logger = logging.getLogger(__name__)


class GPTScratchTokenizer(TokenizersBackend):
    """transformers' `TokenizersBackend`, saved whole or not at all.

    `save_pretrained` writes into a temporary folder beside the destination that replaces it whole
    (`gpt_scratch.files.atomic_folder`), keeping the folder's other files (a model saved there before): a full disk
    or Ctrl-C leaves the previous folder as it was. tokenizer_config.json names `TokenizersBackend`, so
    `AutoTokenizer` loads the folder with no custom code.

    Raises (save_pretrained): NotADirectoryError for a `save_directory` that is a file; OSError naming the folder
    when writing fails part way.
    """

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> tuple[str, ...]:
        if not isinstance(save_directory, (str, os.PathLike)):
            raise TypeError(f"save_directory must be a folder's path, got {type(save_directory).__name__}")
        if os.path.isfile(save_directory):
            raise NotADirectoryError(f"save_directory {save_directory} is a file, not a folder: pass a folder's path "
                                     f"(a missing one is created)")
        arguments = inspect.signature(super().save_pretrained).bind(save_directory, *args, **kwargs).arguments
        if arguments.get("push_to_hub"):  # transformers names the repo after the folder it writes
            kwargs.setdefault("repo_id", Path(save_directory).name)
        with atomic_folder(save_directory, overwrite=True, carry_over=lambda name: True) as tmp:
            written = super().save_pretrained(tmp, *args, **kwargs)
            for name in written:
                if name.endswith("tokenizer_config.json"):  # the class AutoTokenizer builds: transformers' own
                    config = json.loads(Path(name).read_text(encoding="utf-8"))
                    config["tokenizer_class"] = TokenizersBackend.__name__
                    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
                    Path(name).write_text(text, encoding="utf-8")
        return tuple(str(Path(save_directory) / Path(name).relative_to(tmp)) for name in written)


def load_tokenizer(
    path: str | os.PathLike | None = None,
    *,
    model_max_length: int = 1024,
    expected_sha256: str | None = None,
) -> "GPTScratchTokenizer":
    """GPT-2's tokenizer: ids as tiktoken's "gpt2", `<|endoftext|>` (50256) as bos/eos/pad/unk, left padding.

    `path` None reads the packaged gpt2.tiktoken, checked against `GPT2_TIKTOKEN_SHA256`. Otherwise
    `path` is a gpt2.tiktoken file, a folder holding gpt2.tiktoken or encoder.json + vocab.bpe, or an
    encoder.json with vocab.bpe beside it. `expected_sha256`, if given, is checked against the
    gpt2.tiktoken file read. `model_max_length` should be the model's context_length.

    The `tokenizers` backend is built once per file and process; each call returns a fresh wrapper.

    Raises:
        FileNotFoundError: `path` does not exist, or a folder lacks the expected files.
        ValueError: a hash mismatch, a file that is not GPT-2's BPE, or `model_max_length` < 1.
        TypeError: `model_max_length` is not an int.
    """
    if isinstance(model_max_length, bool) or not isinstance(model_max_length, int):
        raise TypeError(f"model_max_length must be an int, got {model_max_length!r}")
    if model_max_length < 1:
        raise ValueError(f"model_max_length must be the context length, >= 1; got {model_max_length}")
    if path is None:
        files = (_PACKAGED_RANKS,)
        expected_sha256 = expected_sha256 or GPT2_TIKTOKEN_SHA256
        if not _PACKAGED_RANKS.is_file():
            raise FileNotFoundError(
                f"the packaged ranks {_PACKAGED_RANKS} are missing (expected sha256 {expected_sha256}); "
                f"reinstall gpt_scratch or pass the path of a gpt2.tiktoken"
            )
    else:
        files = _locate(Path(path))
    if expected_sha256 is not None and len(files) != 1:
        raise ValueError(f"expected_sha256 checks a gpt2.tiktoken file; {path} is encoder.json + vocab.bpe")
    # Size and mtime in the cache key, so a file rewritten in place is read again. The path stays as the caller
    # spelled it (not resolved through symbolic links), so that errors name the file they gave.
    fingerprint = tuple((str(file), file.stat().st_size, file.stat().st_mtime_ns) for file in files)
    backend = _cached_backend(fingerprint, expected_sha256)
    return GPTScratchTokenizer(
        tokenizer_object=backend,  # deep-copied by TokenizersBackend, so the cached backend stays pristine
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,  # as GPT2Tokenizer; byte-level BPE never needs it
        pad_token=ENDOFTEXT,  # GPT-2 has no pad token; the attention mask hides padding anyway
        model_max_length=model_max_length,
        # Generation appends to the right end, so batched prompts must end there: pad on the left.
        padding_side="left",
        # Written to tokenizer_config.json for older transformers, whose default True rewrote " ." as "."
        # on decode (transformers 5 skips the cleanup for BPE anyway).
        clean_up_tokenization_spaces=False,
    )


@functools.lru_cache(maxsize=1)
def load_tiktoken_encoding():
    """tiktoken's "gpt2" encoding built from the packaged, sha256-checked ranks: offline, no download cache.

    The fast path for bulk tokenization (`gpt_scratch.tokenize_file`); ids equal `load_tokenizer()`'s.
    """
    import tiktoken
    from tiktoken_ext.openai_public import r50k_pat_str  # GPT-2's pattern, spelled for tiktoken's regex engine

    ranks = _read_tiktoken_ranks(_PACKAGED_RANKS, GPT2_TIKTOKEN_SHA256)
    return tiktoken.Encoding(
        "gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: _NUM_RANKS}
    )


def write_gpt2_vocab_files(folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write GPT-2's original vocabulary files, rebuilt from the packaged ranks, into `folder` (created if missing):
    `vocab.json` (OpenAI's encoder.json) and `merges.txt` (OpenAI's vocab.bpe), byte for byte as OpenAI released them,
    the files `GPT2Tokenizer` and llama.cpp's converter read. Returns their paths. The folder's other files are kept;
    the two files appear together or, if writing fails, not at all (`gpt_scratch.files.atomic_folder`).
    """
    ranks = _read_tiktoken_ranks(_PACKAGED_RANKS, GPT2_TIKTOKEN_SHA256)
    char = bytes_to_unicode()

    def spell(token: bytes) -> str:  # GPT-2 writes each byte as a printable character
        return "".join(char[byte] for byte in token)

    def merged_pair(token: bytes, rank: int) -> tuple[bytes, bytes]:
        # Token `rank` was made by merge `rank - 256`; byte-pair encoding the token with the merges before it
        # ends in exactly that pair.
        parts = [bytes([byte]) for byte in token]
        while len(parts) > 2:
            _, i = min((ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return parts[0], parts[1]

    by_rank = sorted(ranks, key=ranks.__getitem__)
    encoder = {spell(token): ranks[token] for token in by_rank} | {ENDOFTEXT: _NUM_RANKS}
    merges = ["#version: 0.2"] + [" ".join(map(spell, merged_pair(token, ranks[token]))) for token in by_rank[256:]]
    folder = Path(folder)
    with atomic_folder(folder, overwrite=True, carry_over=lambda name: True) as tmp:
        (tmp / "vocab.json").write_text(json.dumps(encoder), encoding="utf-8")
        (tmp / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def register_auto_tokenizer() -> None:
    """Map `GPTScratchConfig` to the tokenizer class in `AutoTokenizer` (safe to call repeatedly)."""
    # Imported here: the config may not be needed by tokenizer users, and AutoTokenizer pulls in torch.
    from transformers import AutoTokenizer

    from .configuration_gpt_scratch import GPTScratchConfig

    AutoTokenizer.register(GPTScratchConfig, tokenizer_class=TokenizersBackend, exist_ok=True)


def _locate(path: Path) -> tuple[Path, ...]:
    """(gpt2.tiktoken,) or (encoder.json, vocab.bpe) for a user-given file or folder."""
    if path.is_dir():
        if (path / "gpt2.tiktoken").is_file():
            return (path / "gpt2.tiktoken",)
        if (path / "encoder.json").is_file() and (path / "vocab.bpe").is_file():
            return (path / "encoder.json", path / "vocab.bpe")
        raise FileNotFoundError(f"{path} holds neither gpt2.tiktoken nor encoder.json + vocab.bpe")
    if not path.is_file():
        raise FileNotFoundError(f"no such file or folder: {path} (expected {_EXPECTED_FILES})")
    if path.suffix == ".json":
        merges = path.with_name("vocab.bpe")
        if not merges.is_file():
            raise FileNotFoundError(f"{path} is an encoder.json, but {merges} (its merges) does not exist")
        return (path, merges)
    return (path,)


@functools.lru_cache(maxsize=8)
def _cached_backend(fingerprint: tuple[tuple[str, int, int], ...], expected_sha256: str | None) -> Tokenizer:
    """The converted `tokenizers.Tokenizer` for the files in `fingerprint`; raises as `load_tokenizer`."""
    files = [Path(name) for name, _, _ in fingerprint]
    if len(files) == 1:
        ranks = _read_tiktoken_ranks(files[0], expected_sha256)
    else:
        ranks = _read_data_gym_ranks(*files)
    if files[0] != _PACKAGED_RANKS and ranks != (gpt2 := _read_tiktoken_ranks(_PACKAGED_RANKS, GPT2_TIKTOKEN_SHA256)):
        # Well-formed, but another BPE (or GPT-2's with ranks swapped): the ids will not be GPT-2's.
        differ = sum(gpt2.get(token) != rank for token, rank in ranks.items())
        sha = f" (sha256 {hashlib.sha256(files[0].read_bytes()).hexdigest()}, not {GPT2_TIKTOKEN_SHA256})"
        logger.warning("%s holds a byte-level BPE that is not GPT-2's%s: %d of its %d tokens have other ids than in "
                       "GPT-2's, so text encodes to other ids; pass expected_sha256 to require a particular file",
                       files[0], sha if len(files) == 1 else "", differ, len(ranks))
    converter = _RanksConverter(ranks, pattern=GPT2_SPLIT_PATTERN, extra_special_tokens=[ENDOFTEXT])
    return converter.converted()


class _RanksConverter(TikTokenConverter):
    """TikTokenConverter fed ranks already in memory.

    Its own loader goes through tiktoken's download cache: it copies local files into the cache
    directory (an error when TIKTOKEN_CACHE_DIR is read-only) and serves a stale copy if the file
    changes later.
    """

    def __init__(self, ranks: dict[bytes, int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.ranks = ranks

    def load_tiktoken_bpe(self, tiktoken_url: str | None) -> dict[bytes, int]:
        return self.ranks


def _read_tiktoken_ranks(path: Path, expected_sha256: str | None) -> dict[bytes, int]:
    """Parse "<base64 token> <rank>" lines, after checking the file's sha256 if one is expected."""
    data = path.read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ValueError(
                f"{path} has sha256 {actual}, expected {expected_sha256}: the file is corrupted or not "
                f"GPT-2's ranks; restore it from tiktoken's r50k_base.tiktoken or reinstall gpt_scratch"
            )
    ranks = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            token, rank = base64.b64decode(token, validate=True), int(rank)
        except ValueError as error:  # binascii.Error is a ValueError too
            raise ValueError(
                f"{path} line {number} is {line[:60]!r}, not '<base64 token> <rank>'; "
                f"expected {_EXPECTED_FILES}"
            ) from error
        # tiktoken writes each token once, in rank order: anything else is an edited or corrupted file.
        if token in ranks:
            raise ValueError(f"{path} line {number}: token {token!r} is listed twice (ranks {ranks[token]} and "
                             f"{rank}); each token has one rank")
        if rank != len(ranks):
            raise ValueError(f"{path} line {number}: rank {rank} where rank {len(ranks)} comes next; the ranks run "
                             f"0..N-1 in order, one per line")
        ranks[token] = rank
    _check_ranks(ranks, str(path))
    return ranks


def _read_data_gym_ranks(encoder_path: Path, merges_path: Path) -> dict[bytes, int]:
    """tiktoken ranks from GPT-2's original encoder.json (token -> id) and vocab.bpe (merges in order)."""
    # GPT-2 spells bytes as printable characters (bytes_to_unicode); undo that to get raw bytes.
    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    try:
        encoder = json.loads(encoder_path.read_text(encoding="utf-8"))
        encoder.pop(ENDOFTEXT, None)  # the special token, not a mergeable one
        ranks = {bytes(byte_of[char] for char in token): int(i) for token, i in encoder.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{encoder_path} is not GPT-2's encoder.json (a JSON object of byte-level tokens -> ids)"
        ) from error
    _check_ranks(ranks, str(encoder_path))
    # tiktoken merges by rank, so the ids must follow vocab.bpe's merge order: merge i makes id 256 + i.
    lines = merges_path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("#version"):
        raise ValueError(f"{merges_path} is not GPT-2's vocab.bpe: expected a '#version' first line")
    merges = [line for line in lines[1:] if line]
    for rank, line in enumerate(merges, start=256):
        merged = line.replace(" ", "", 1)  # "Ġ t" -> "Ġt"
        if (
            line.count(" ") != 1
            or any(char not in byte_of for char in merged)
            or ranks.get(bytes(byte_of[char] for char in merged)) != rank
        ):
            raise ValueError(
                f"{merges_path} merge {line!r} does not make id {rank} of {encoder_path}: "
                f"expected GPT-2's matching encoder.json + vocab.bpe"
            )
    return ranks


def _check_ranks(ranks: dict[bytes, int], source: str) -> None:
    """GPT-2's shape: ranks 0..50255 once each, and every single byte present so any text encodes."""
    if sorted(ranks.values()) != list(range(_NUM_RANKS)):
        raise ValueError(
            f"{source} has {len(ranks)} tokens, ranks {min(ranks.values(), default=None)}.."
            f"{max(ranks.values(), default=None)}; expected GPT-2's {_NUM_RANKS} ranks 0..{_NUM_RANKS - 1}"
        )
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise ValueError(f"{source} lacks single-byte tokens {missing[:8]}: byte-level BPE needs all 256")
