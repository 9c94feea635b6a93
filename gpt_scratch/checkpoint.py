"""Checkpoint files in and out, one tensor at a time: transformers GPT-2, the book's `GPTModel`, and ours.

`convert_checkpoint` (what `gpt-scratch convert` runs) reads a checkpoint in any of three formats and
writes another:

- "hf-gpt2": a transformers GPT-2 folder or Hub id (`openai-community/gpt2`, ...): config.json with
  `model_type: gpt2`, weights in model.safetensors, sharded safetensors with an index, or pytorch_model.bin;
- "book": a state dict of the book's `GPTModel` (`torch.save(model.state_dict(), "model.pth")`) and the
  book's config dict, or a folder of `model.pth` + `config.json` (what `dst_format="book"` writes);
- "scratch": our own folder, as `GPTScratchForCausalLM.save_pretrained` writes it.

Every key and shape is checked from the files' headers before any tensor is read (`gpt_scratch.convert`'s
plans). Tensors are then read, converted and written one at a time, so memory stays at about the largest
tensor whatever the model's size: safetensors files are written by `SafetensorsWriter`, which lays them
out as `safetensors.torch.save_file` does (same header, same byte order: same bytes). Output goes to a
temporary folder beside the destination and is renamed into place only when complete.

PyTorch files (`.pth`, `.bin`) are pickles: they are read with `torch.load(weights_only=True, mmap=True)`,
which accepts tensors and plain containers only and never runs the pickle's code.

`load_pretrained` is `GPTScratchPreTrainedModel.from_pretrained` where this package is installed: it reads
GPT-2 checkpoints through `load_hf_gpt2` and names the file and tensor when a checkpoint is broken.
"""

import errno
import json
import logging
import math
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .configuration_gpt_scratch import PRESET_NAMES, GPTScratchConfig
from .convert import (
    Step,
    config_from_book,
    config_from_hf_gpt2,
    config_to_book,
    config_to_hf_gpt2,
    make,
    plan_from_book,
    plan_from_hf_gpt2,
    plan_to_hf_gpt2,
    to_book,
)
from .files import atomic_folder, check_destination
from .network import hub_timeouts

logger = logging.getLogger(__name__)

SOURCE_FORMATS = ("auto", "hf-gpt2", "book", "scratch")
TARGET_FORMATS = ("scratch", "hf-gpt2", "book", "gguf")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DOWNLOAD_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")

# safetensors' dtype codes; the writer orders tensors as safetensors does: wider dtypes first, then by name.
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_DTYPE_CODES = {dtype: code for code, dtype in _SAFETENSORS_DTYPES.items()}
_DTYPE_RANK = {torch.float64: 3, torch.float32: 2, torch.bfloat16: 1, torch.float16: 0}

_TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_BOOK_WEIGHTS, _BOOK_CONFIG = "model.pth", "config.json"


# ----- reading ---------------------------------------------------------------------------------------------


class TensorFiles:
    """Named tensors in safetensors and/or PyTorch files, read one at a time.

    Names, shapes and dtypes come from the safetensors headers (for PyTorch files, from a memory-mapped
    `torch.load(weights_only=True)`, which reads no tensor data). `get` returns a tensor backed by a private
    memory map of its file, as transformers' loader does: only its own pages are read, and for safetensors
    they are unmapped when the tensor is freed (each read opens the file anew), so a stream of reads holds
    no more than the tensors still referenced. The two most recent reads are cached, since the query, key
    and value parts of a fused GPT-2 tensor are read one after another.

    Raises:
        ValueError: a file that cannot be read (corrupt, truncated, not a state dict, a pickle holding
            anything but tensors), or the same tensor name in two files.
    """

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self._file: dict[str, Path] = {}
        self._pickled: dict[Path, dict[str, torch.Tensor]] = {}
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        for path in self.paths:
            entries = self._read_safetensors_header(path) if path.suffix == ".safetensors" else self._load_torch(path)
            for key, (shape, dtype) in entries.items():
                if key in self._file:
                    raise ValueError(f"tensor {key!r} is in both {self._file[key]} and {path}")
                self._file[key], self.shapes[key], self.dtypes[key] = path, shape, dtype

    @property
    def sizes(self) -> dict[Path, int]:
        """Bytes on disk of each file."""
        return {path: path.stat().st_size for path in self.paths}

    @staticmethod
    def _read_safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(path, "pt") as f:
                slices = {key: f.get_slice(key) for key in f.keys()}
                entries = {key: (tuple(s.get_shape()), s.get_dtype()) for key, s in slices.items()}
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
        unknown = {code for _, code in entries.values() if code not in _SAFETENSORS_DTYPES}
        if unknown:
            raise ValueError(f"{path}: tensors of unsupported dtype {sorted(unknown)}")
        return {key: (shape, _SAFETENSORS_DTYPES[code]) for key, (shape, code) in entries.items()}

    def _load_torch(self, path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        try:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as err:
                if "mmap can only be used" not in str(err):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # the legacy format cannot be mapped
        except Exception as err:  # pickle, zip and EOF errors alike: name the file and the problem
            raise _torch_load_error(path, err) from err
        # The book's chapter 5 also saves {"model_state_dict": ..., "optimizer_state_dict": ...}.
        if isinstance(obj, Mapping) and isinstance(obj.get("model_state_dict"), Mapping):
            obj = obj["model_state_dict"]
        if not isinstance(obj, Mapping):
            raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict (a dict of tensors)")
        not_tensors = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
        if not_tensors:
            raise ValueError(f"{path}: not a state dict: {not_tensors[:5]} are not tensors")
        self._pickled[path] = dict(obj)
        return {key: (tuple(t.shape), t.dtype) for key, t in obj.items()}

    def get(self, key: str) -> torch.Tensor:
        """One tensor, by name. Raises KeyError for a name the files do not hold."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        path = self._file[key]
        if path in self._pickled:
            tensor = self._pickled[path][key]
        else:
            from safetensors import safe_open

            with safe_open(path, "pt") as f:
                tensor = f.get_tensor(key)
        self._cache[key] = tensor
        if len(self._cache) > 2:
            self._cache.popitem(last=False)
        return tensor

    def clear_cache(self) -> None:
        self._cache.clear()


def _torch_load_error(path: Path, err: Exception) -> ValueError:
    """torch.load's error, shortened to what is wrong with the file (its message also suggests unsafe loading)."""
    text = str(err)
    # The global the unpickler refused, as torch words it: "Unsupported global: GLOBAL os.system" up to 2.12,
    # "Trying to load unsupported GLOBAL posix.system whose module posix is blocked" from 2.13.
    refused = re.search(r"unsupported global:? (?:GLOBAL )?([\w.]+)", text, flags=re.IGNORECASE)
    if refused:
        return ValueError(f"{path}: holds Python objects besides tensors ({refused[1]}), which torch.load("
                          f"weights_only=True) refuses to unpickle; a pickle can run code when loaded, so load it "
                          f"unsafely only if you trust where it came from")
    if "WeightsUnpickler error:" in text:
        detail = next(line.strip() for line in text.split("WeightsUnpickler error:", 1)[1].splitlines() + ["?"]
                      if line.strip())
    else:
        detail = text.strip().split(". ")[0].strip() or type(err).__name__
    return ValueError(f"{path}: not a readable PyTorch file ({detail})")


# ----- sources: where the files are, what format, which config ------------------------------------------


@dataclass
class Source:
    """A checkpoint opened for conversion, seen through our keys.

    shapes/get: our state dict's keys (`lm_head.weight` always, aliased to the token embedding when the
    head is tied and not stored), their shapes, and a reader of one converted tensor.
    """

    name: str
    format: str
    config: GPTScratchConfig
    files: TensorFiles
    shapes: dict[str, tuple[int, ...]]
    get: Callable[[str], torch.Tensor]
    dtype: torch.dtype


def _resolve(src: str | os.PathLike, filename: str, download: Mapping[str, Any]) -> Path | None:
    """A file of a local folder or Hub repo (downloaded into the cache), or None where it has none.

    Raises:
        FileNotFoundError: `src` is neither a local path nor a model repo on the Hub.
        ConnectionError: the Hub could not be reached (no answer within huggingface_hub's HF_HUB_ETAG_TIMEOUT, after
            its retries) and the file is not in the cache. Told apart from a missing file, which it would otherwise
            look like, so the first lookup fails rather than each one waiting out its own retries.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError
    from transformers.utils import cached_file

    try:
        path = cached_file(str(src), filename, **download)  # raises for a missing file too: told apart below
    except OSError as err:
        if isinstance(err.__cause__, LocalEntryNotFoundError) and not Path(src).exists():
            if constants.is_offline_mode() or download.get("local_files_only"):
                raise FileNotFoundError(f"{src}: {filename} is not in the local cache, and Hub downloads are off "
                                        f"(HF_HUB_OFFLINE or local_files_only)") from err
            raise ConnectionError(f"{src}: could not reach the Hub ({constants.ENDPOINT}) to download {filename}, "
                                  f"and it is not in the local cache; check the network (each request waits "
                                  f"HF_HUB_ETAG_TIMEOUT={constants.HF_HUB_ETAG_TIMEOUT} s)") from err
        if "does not appear to have" in str(err):  # transformers' words for a file the folder or repo lacks
            return None
        raise FileNotFoundError(f"{src}: not a local file or folder, and not a model on the Hub ({err})") from err
    return Path(path) if path is not None else None


def _weight_files(src: str | os.PathLike, download: Mapping[str, Any]) -> list[Path]:
    """The weight files of a transformers-style folder or Hub repo, looked for in transformers' order:
    model.safetensors, its sharded index, pytorch_model.bin, its sharded index."""
    for single_name, index_name in (("model.safetensors", "model.safetensors.index.json"),
                                    ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        single = _resolve(src, single_name, download)
        if single is not None:
            return [single]
        index = _resolve(src, index_name, download)
        if index is not None:
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{index}: not a readable checkpoint index ({err!r})") from err
            shards = []
            for shard in sorted(set(weight_map.values())):
                path = _resolve(src, shard, download)
                if path is None:
                    raise FileNotFoundError(f"{src}: {index_name} lists {shard}, which is missing")
                shards.append(path)
            return shards
    raise FileNotFoundError(
        f"{src}: no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def detect_format(src: str | os.PathLike, download: Mapping[str, Any] | None = None) -> str:
    """"hf-gpt2", "book" or "scratch", from what `src` holds (a file is the book's state dict; a folder or
    Hub repo is told by its config.json).

    Raises:
        FileNotFoundError: `src` is neither a local path nor a model repo on the Hub.
        ValueError: a folder whose format cannot be told (the message says what was found).
    """
    download = download or {}
    path = Path(src)
    if path.is_file():
        return "book"
    if path.is_dir() and (path / _BOOK_WEIGHTS).is_file() and not (path / "config.json").is_file():
        return "book"
    config_file = _resolve(src, "config.json", download)
    if config_file is None:
        raise ValueError(f"{src}: cannot tell the format: no config.json (pass --from, or the .pth file itself)")
    config = _read_json(config_file)
    model_type = config.get("model_type")
    if model_type == "gpt2":
        return "hf-gpt2"
    if model_type == GPTScratchConfig.model_type:
        return "scratch"
    if model_type is None and "emb_dim" in config:
        return "book"
    raise ValueError(
        f"{src}: unknown format: config.json has model_type {model_type!r}; this converter reads transformers "
        f"GPT-2 ('gpt2'), gpt_scratch ('{GPTScratchConfig.model_type}') and the book's GPTModel"
    )


def book_config(spec: str | Mapping[str, Any] | None, shapes: Mapping[str, tuple[int, ...]]) -> GPTScratchConfig:
    """The config of a book `GPTModel` state dict: what the weights say (vocab_size, context_length, emb_dim,
    n_layers, qkv_bias), plus `spec` for what they cannot say (n_heads, drop_rate).

    spec: a preset name ("gpt2"/"124M", ... "gpt2-xl"/"1558M": GPT-2's sizes, 50257 tokens, drop_rate 0.1,
        as the book's chapter 5 loads them into `GPTModel`; context_length and qkv_bias come from the
        weights), the book's config dict, a JSON file holding it, or a JSON string.

    Raises:
        ValueError: no spec (n_heads cannot be inferred), an unreadable spec, or a spec that contradicts
            the weights (the message names the field, both values and the tensor).
    """
    plan_from_book(shapes)  # keys and shapes are consistent before anything is read from them
    n_layers = len({k.split(".")[1] for k in shapes if k.startswith("trf_blocks.")})
    vocab, emb_dim = shapes["tok_emb.weight"]
    inferred = {
        "vocab_size": (vocab, "tok_emb.weight"), "emb_dim": (emb_dim, "tok_emb.weight"),
        "context_length": (shapes["pos_emb.weight"][0], "pos_emb.weight"),
        "n_layers": (n_layers, "trf_blocks.*"), "qkv_bias": ("trf_blocks.0.att.W_query.bias" in shapes,
                                                               "trf_blocks.0.att.W_query.bias"),
    }
    if spec is None:
        raise ValueError(
            "the book's weights do not say how many attention heads the model has: pass its config "
            f"(--config): a preset ({', '.join(PRESET_NAMES)}) or the book's config dict as JSON"
        )
    label = spec if isinstance(spec, str) else "the book's config"
    if isinstance(spec, str) and spec in PRESET_NAMES:
        preset = GPTScratchConfig.from_preset(spec)
        given = {"vocab_size": preset.vocab_size, "emb_dim": preset.emb_dim, "n_layers": preset.n_layers,
                 "n_heads": preset.n_heads, "drop_rate": 0.1}
    elif isinstance(spec, str):
        given = _book_config_json(spec)
    elif isinstance(spec, Mapping):
        given = dict(spec)
    else:
        raise TypeError(f"the book's config must be a preset name, a JSON string or file, or a dict, got "
                        f"{type(spec).__name__}")
    for field, (value, key) in inferred.items():
        if field in given and given[field] != value:
            raise ValueError(
                f"config {label!r} does not fit the weights: it has {field}={given[field]!r}, but {key} says "
                f"{field}={value!r}"
            )
    if "n_heads" not in given:
        raise ValueError(f"config {label!r} has no n_heads, which the weights cannot tell")
    return config_from_book({**{field: value for field, (value, _) in inferred.items()}, **given})


def _book_config_json(spec: str) -> dict[str, Any]:
    if spec.lstrip().startswith("{"):
        try:
            value = json.loads(spec)
        except ValueError as err:
            raise ValueError(f"--config is not valid JSON ({err})") from err
    elif Path(spec).is_file():
        value = _read_json(Path(spec))
    else:
        raise ValueError(
            f"--config {spec!r}: not a preset ({', '.join(PRESET_NAMES)}), a JSON file or a JSON object"
        )
    if not isinstance(value, dict):
        raise ValueError(f"--config must be a JSON object (the book's config dict), got {type(value).__name__}")
    return value


def _expected_shapes(config: GPTScratchConfig) -> dict[str, tuple[int, ...]]:
    """Our model's state dict for `config`: keys in module order and shapes (built on the meta device)."""
    from .modeling_gpt_scratch import GPTScratchForCausalLM

    with torch.device("meta"):
        model = GPTScratchForCausalLM(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_fits(config: GPTScratchConfig, shapes: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Raise ValueError naming the problem if weights of these (our) shapes do not fit `config`."""
    expected = _expected_shapes(config)
    have = dict(shapes)
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight")
        have.pop("lm_head.weight", None)
    blocks = len({k.split(".")[2] for k in have if k.startswith("model.trf_blocks.")})
    if blocks != config.n_layers:
        raise ValueError(f"{where} does not fit the weights: it says n_layers={config.n_layers}, the weights have "
                         f"{blocks} blocks")
    missing, unexpected = sorted(expected.keys() - have.keys()), sorted(have.keys() - expected.keys())
    if missing or unexpected:
        parts = [f"missing keys: {missing}" if missing else "", f"unexpected keys: {unexpected}" if unexpected else ""]
        raise ValueError(f"{where} does not fit the weights: " + "; ".join(p for p in parts if p))
    for key, shape in expected.items():
        if have[key] != shape:
            raise ValueError(f"{where} does not fit the weights: {key}: the config needs shape {shape}, the weights "
                             f"have {have[key]}")


def open_source(
    src: str | os.PathLike,
    src_format: str = "auto",
    *,
    book_config_spec: str | Mapping[str, Any] | None = None,
    config: GPTScratchConfig | None = None,
    download: Mapping[str, Any] | None = None,
) -> Source:
    """Open a checkpoint for conversion: find its files (downloading a Hub repo into the cache), read the
    headers, plan the conversion to our keys and check that the config fits the weights. No tensor is read.

    config: use this config instead of the checkpoint's own (it must fit the weights).

    Raises:
        FileNotFoundError: `src` does not exist locally or on the Hub, or has no weights.
        ValueError: an unknown format, unreadable files, missing or unexpected keys (listed), a shape that
            does not fit (key, expected, found), or a config that does not fit the weights.
    """
    download = dict(download or {})
    if src_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {src_format!r}; expected one of {', '.join(SOURCE_FORMATS)}")
    fmt = detect_format(src, download) if src_format == "auto" else src_format
    if book_config_spec is not None and fmt != "book":
        raise ValueError(f"--config applies to the book's format only; {src} is a {fmt} checkpoint with its own "
                         f"config.json")
    if fmt == "book":
        path = Path(src)
        if path.is_dir():
            if not (path / _BOOK_WEIGHTS).is_file():
                raise FileNotFoundError(f"{src}: no {_BOOK_WEIGHTS} (the book's format is a .pth file, or a folder "
                                        f"of {_BOOK_WEIGHTS} + {_BOOK_CONFIG})")
            files = TensorFiles([path / _BOOK_WEIGHTS])
            if book_config_spec is None and (path / _BOOK_CONFIG).is_file():
                book_config_spec = _read_json(path / _BOOK_CONFIG)
        elif path.is_file():
            files = TensorFiles([path])
        else:
            raise FileNotFoundError(f"{src}: no such file (the book's format is a local .pth file or folder)")
        steps = {s.key: s for s in plan_from_book(files.shapes)}
        source_config = book_config(book_config_spec, files.shapes)
    else:
        config_file = _resolve(src, "config.json", download)
        if config_file is None:
            raise FileNotFoundError(f"{src}: no config.json")
        config_dict = _read_json(config_file)
        files = TensorFiles(_weight_files(src, download))
        if fmt == "hf-gpt2":
            if config_dict.get("model_type") != "gpt2":
                raise ValueError(f"{config_file}: model_type is {config_dict.get('model_type')!r}, not 'gpt2'")
            source_config = config_from_hf_gpt2(config_dict)
            steps = {s.key: s for s in plan_from_hf_gpt2(files.shapes)}
            stored_head = any(k.endswith("lm_head.weight") for k in files.shapes)
            if not (config or source_config).tie_word_embeddings and not stored_head:
                raise ValueError(f"{src}: GPT-2 state dict does not match: missing keys: ['lm_head.weight'] "
                                 f"(the config says the output head is not tied to the token embedding)")
        elif fmt == "scratch":
            if config_dict.get("model_type") != GPTScratchConfig.model_type:
                raise ValueError(f"{config_file}: model_type is {config_dict.get('model_type')!r}, not "
                                 f"{GPTScratchConfig.model_type!r}")
            source_config = GPTScratchConfig.from_dict(config_dict)
            steps = None
        else:
            raise ValueError(f"unknown source format {fmt!r}; expected one of {', '.join(SOURCE_FORMATS)}")
    config = config if config is not None else source_config

    if steps is not None:
        shapes = {key: step.shape for key, step in steps.items()}

        def get(key: str) -> torch.Tensor:
            return make(steps[key], files.get)
    else:
        shapes = dict(files.shapes)
        get = files.get
        if "lm_head.weight" not in shapes and "model.tok_emb.weight" in shapes:
            shapes["lm_head.weight"] = shapes["model.tok_emb.weight"]

            def get(key: str) -> torch.Tensor:
                return files.get("model.tok_emb.weight" if key == "lm_head.weight" else key)
    where = "the given config" if config is not source_config else (
        f"--config {book_config_spec!r}" if isinstance(book_config_spec, str) else f"{src}'s config")
    check_fits(config, shapes, where)
    emb_key = {"scratch": "model.tok_emb.weight", "book": "tok_emb.weight"}.get(fmt, None)
    emb_key = emb_key or next(k for k in files.shapes if k.endswith("wte.weight"))
    return Source(str(src), fmt, config, files, shapes, get, files.dtypes[emb_key])


# ----- writing -------------------------------------------------------------------------------------------


class SafetensorsWriter:
    """Writes one safetensors file tensor by tensor, with the layout `safetensors.torch.save_file` gives:
    header `{"__metadata__": ..., name: {"dtype", "shape", "data_offsets"}}` padded with spaces to 8 bytes,
    tensors ordered by dtype (widest first) then name, little-endian data.

    The header is written first (shapes and dtypes are known in advance), then `write` must be called for
    every tensor in `order`.
    """

    def __init__(self, path: Path, entries: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
                 metadata: Mapping[str, str]):
        self.entries = dict(entries)
        self.order = sorted(self.entries, key=lambda k: (-_DTYPE_RANK.get(self.entries[k][1], -1), k))
        header: dict[str, Any] = {"__metadata__": dict(metadata)}
        offset = 0
        for key in self.order:
            shape, dtype = self.entries[key]
            size = math.prod(shape) * dtype.itemsize
            header[key] = {"dtype": _DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        self._file = open(path, "wb")
        self._file.write(struct.pack("<Q", len(blob)) + blob)
        self._next = 0

    def write(self, key: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self.order) or key != self.order[self._next]:
            raise RuntimeError(f"safetensors writer: got {key!r}, expected {self.order[self._next:self._next + 1]}")
        shape, dtype = self.entries[key]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise RuntimeError(f"{key}: planned {shape} {dtype}, got {tuple(tensor.shape)} {tensor.dtype}")
        self._file.write(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self._next += 1

    def close(self) -> None:
        self._file.close()
        if self._next != len(self.order):
            raise RuntimeError(f"safetensors writer: {len(self.order) - self._next} tensors were not written")

    def abort(self) -> None:
        """Close the file, incomplete (the caller removes it)."""
        self._file.close()


def _progress(total_bytes: int, tensors: int, desc: str, enabled: bool):
    from transformers.utils.logging import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not enabled,
                postfix=f"0/{tensors} tensors")


def _parse_size(max_shard_size: int | str) -> int:
    """Bytes, from a number of bytes or "2GB"/"500MB"/... (decimal units, as `save_pretrained` reads them)."""
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    text = str(max_shard_size).strip()
    try:
        if isinstance(max_shard_size, bool):
            raise ValueError
        size = int(text) if text.isdigit() else int(float(text[:-2]) * units[text[-2:].upper()])
    except (ValueError, KeyError, OverflowError):
        raise ValueError(f"max shard size {max_shard_size!r}: expected a number of bytes or a size in KB, MB, GB "
                         f"or TB, e.g. 2GB or 500MB") from None
    if size <= 0:
        raise ValueError(f"max shard size must be positive, got {max_shard_size!r}")
    return size


def _write_weights(folder: Path, keys: list[str], shapes: Mapping[str, tuple[int, ...]],
                   produce: Callable[[str], torch.Tensor], dtype: torch.dtype, max_shard_size: int,
                   progress: bool) -> list[Path]:
    """model.safetensors, or shards + model.safetensors.index.json split as `save_pretrained` splits them."""
    from huggingface_hub import split_state_dict_into_shards_factory

    split = split_state_dict_into_shards_factory(
        {k: shapes[k] for k in keys}, get_storage_size=lambda shape: math.prod(shape) * dtype.itemsize,
        filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_size,
    )
    bar = _progress(split.metadata["total_size"], len(keys), "Converting", progress)
    written = 0
    files = []
    with bar:
        for filename, names in split.filename_to_tensors.items():
            writer = SafetensorsWriter(folder / filename, {k: (shapes[k], dtype) for k in names}, {"format": "pt"})
            try:
                for key in writer.order:
                    tensor = produce(key).to(dtype)
                    writer.write(key, tensor)
                    written += 1
                    bar.update(tensor.nbytes)
                    bar.set_postfix_str(f"{written}/{len(keys)} tensors", refresh=False)
                    del tensor
            except BaseException:
                writer.abort()
                raise
            writer.close()
            files.append(folder / filename)
    if split.is_sharded:
        index = {"metadata": {"total_parameters": sum(math.prod(shapes[k]) for k in keys), **split.metadata},
                 "weight_map": split.tensor_to_filename}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return files


def _write_scratch(folder: Path, source: Source, dtype: torch.dtype, max_shard_size: int, progress: bool) -> int:
    from transformers.dynamic_module_utils import custom_object_save

    from .modeling_gpt_scratch import GPTScratchForCausalLM

    config = GPTScratchConfig.from_dict(source.config.to_dict())
    with torch.device("meta"):
        model = GPTScratchForCausalLM(config)
    keys = [k for k in model.state_dict() if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    _write_weights(folder, keys, source.shapes, source.get, dtype, max_shard_size, progress)
    # What save_pretrained writes beside the weights: config (dtype, architectures, auto_map), the code files
    # for trust_remote_code, and the model's default generation config.
    config.dtype = str(dtype).removeprefix("torch.")
    config.architectures = [GPTScratchForCausalLM.__name__]
    custom_object_save(model, folder, config=config)
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    return len(keys)


def _write_hf_gpt2(folder: Path, source: Source, dtype: torch.dtype, max_shard_size: int, progress: bool) -> int:
    from transformers import GPT2LMHeadModel

    hf_config = config_to_hf_gpt2(source.config)
    with torch.device("meta"):
        model = GPT2LMHeadModel(hf_config)
    steps: dict[str, Step] = {s.key: s for s in plan_to_hf_gpt2(source.shapes)}
    keys = [k for k in model.state_dict() if not (k == "lm_head.weight" and hf_config.tie_word_embeddings)]
    if set(keys) - steps.keys():
        raise ValueError(f"cannot make GPT-2 tensors {sorted(set(keys) - steps.keys())} from {source.name}")
    zeros_like = torch.empty(0, dtype=dtype)
    _write_weights(folder, keys, {k: s.shape for k, s in steps.items()},
                   lambda key: make(steps[key], source.get, zeros_like), dtype, max_shard_size, progress)
    hf_config.dtype = str(dtype).removeprefix("torch.")
    hf_config.architectures = [GPT2LMHeadModel.__name__]
    # GPT-2's legacy name for the context length: OpenAI's config.json has it, and tools that read the file (llama.cpp's
    # convert_hf_to_gguf.py) require it; transformers 5 no longer writes it.
    hf_config.n_ctx = source.config.context_length
    hf_config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    if source.config.vocab_size >= GPT2_VOCAB_SIZE:
        _write_gpt2_tokenizer(folder, source.config.context_length)
    else:
        logger.warning("%s has a %d-token vocabulary, not GPT-2's: no tokenizer files written", source.name,
                       source.config.vocab_size)
    return len(keys)


GPT2_VOCAB_SIZE = 50257


def _write_gpt2_tokenizer(folder: Path, context_length: int) -> None:
    """The tokenizer files of a GPT-2 folder, as openai-community/gpt2 has them: OpenAI's vocab.json and merges.txt
    (rebuilt from the packaged ranks), and transformers' GPT2Tokenizer built from them (tokenizer.json with OpenAI's
    50,000 merges, which llama.cpp's converter copies; our tokenizer's has tiktoken's 108,299 equivalent ones).
    <|endoftext|> also pads, on the left, as with our tokenizer."""
    from transformers import GPT2Tokenizer

    from .tokenization_gpt_scratch import ENDOFTEXT, write_gpt2_vocab_files

    write_gpt2_vocab_files(folder)
    tokenizer = GPT2Tokenizer.from_pretrained(folder, model_max_length=context_length, pad_token=ENDOFTEXT,
                                              padding_side="left")
    tokenizer.save_pretrained(folder)


def _write_book(folder: Path, source: Source, dtype: torch.dtype, progress: bool) -> int:
    # torch.save needs the whole state dict at once: the book's format is the one output held in memory.
    # The book never ties its head: `out_head.weight` is written even where ours shares the token embedding.
    keys = list(source.shapes)
    total = sum(math.prod(source.shapes[k]) for k in keys) * dtype.itemsize
    # The bar counts what model.pth will hold: the weights, then one causal-mask buffer per block (to_book's).
    tensors = len(keys) + source.config.n_layers
    with _progress(total, tensors, "Converting", progress) as bar:
        ours = {}
        for i, key in enumerate(keys):
            ours[key] = source.get(key).to(dtype)
            bar.update(ours[key].nbytes)
            bar.set_postfix_str(f"{i + 1}/{tensors} tensors", refresh=False)
        book = to_book(ours)
        bar.set_postfix_str(f"{len(book)}/{tensors} tensors")
    torch.save(book, folder / _BOOK_WEIGHTS)
    (folder / _BOOK_CONFIG).write_text(json.dumps(config_to_book(source.config), indent=2) + "\n")
    return len(book)


@dataclass(frozen=True)
class ConversionResult:
    """What `convert_checkpoint` did."""

    source_format: str
    target_format: str
    path: Path
    files: tuple[str, ...]
    tensors: int
    bytes: int


def _dtype(dtype: str | torch.dtype | None, default: torch.dtype) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default if default.is_floating_point else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise ValueError(f"dtype {dtype!r} is not supported; expected auto, {', '.join(DTYPES)}")


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    src_format: str = "auto",
    dst_format: str = "scratch",
    book_config_spec: str | Mapping[str, Any] | None = None,
    dtype: str | torch.dtype | None = None,
    max_shard_size: int | str = "50GB",
    overwrite: bool = False,
    progress: bool = True,
    download: Mapping[str, Any] | None = None,
) -> ConversionResult:
    """Convert a checkpoint to our folder ("scratch"), a transformers GPT-2 folder ("hf-gpt2", with GPT-2's tokenizer
    files), the book's `model.pth` + `config.json` folder ("book") or one GGUF file for llama.cpp ("gguf", written by
    `gpt_scratch.gguf_export.convert_to_gguf`, whose `dtype` may also be "f32", "f16", "bf16" or "q8_0"), one tensor at
    a time.

    src: a transformers GPT-2 folder or Hub id, the book's `.pth` (with `book_config_spec`, see `book_config`),
        or one of our folders; `src_format="auto"` tells them apart (see `detect_format`).
    dst: the output folder, written beside itself and renamed into place when complete; an existing one is
        refused unless `overwrite`.
    dtype: "float32", "bfloat16", "float16", or None/"auto" for the source's.
    max_shard_size: safetensors files are split as `save_pretrained(max_shard_size=...)` splits them.
    download: `cache_dir`, `revision`, `token`, ... for a Hub id, as `from_pretrained` takes them.

    Raises:
        FileNotFoundError: `src` does not exist locally or on the Hub, or has no weights.
        FileExistsError: `dst` exists and `overwrite` is False.
        PermissionError: `dst` cannot be written (checked before any work).
        OSError: writing failed part way (a full disk): the message names `dst`, which is left as it was.
        ValueError: an unknown format or dtype, unreadable files, missing or unexpected keys (listed), a shape
            that does not fit (key, expected, found), or a config that does not fit the weights.
    """
    if dst_format not in TARGET_FORMATS:
        raise ValueError(f"unknown target format {dst_format!r}; expected one of {', '.join(TARGET_FORMATS)}")
    if dst_format == "gguf":  # one file for llama.cpp, not a folder: gpt_scratch.gguf_export writes it
        from .gguf_export import convert_to_gguf

        return convert_to_gguf(src, dst, src_format=src_format, book_config_spec=book_config_spec, dtype=dtype,
                               overwrite=overwrite, progress=progress, download=download)
    if isinstance(dtype, str) and dtype != "auto" and dtype.removeprefix("torch.") not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; expected auto, {', '.join(DTYPES)}")
    shard_bytes = _parse_size(max_shard_size)
    dst = Path(dst)
    check_destination(dst, overwrite)  # before any download or read
    with hub_timeouts():
        source = open_source(src, src_format, book_config_spec=book_config_spec, download=download)
    out_dtype = _dtype(dtype, source.dtype)
    logger.info("converting %s (%s) to %s (%s, %s)", src, source.format, dst, dst_format, out_dtype)
    with atomic_folder(dst, overwrite) as folder:
        if dst_format == "scratch":
            n_tensors = _write_scratch(folder, source, out_dtype, shard_bytes, progress)
        elif dst_format == "hf-gpt2":
            n_tensors = _write_hf_gpt2(folder, source, out_dtype, shard_bytes, progress)
        else:
            n_tensors = _write_book(folder, source, out_dtype, progress)
        source.files.clear_cache()
        files = tuple(sorted(p.name for p in folder.iterdir()))
        weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".pth")]
        n_bytes = sum(p.stat().st_size for p in weights)
    return ConversionResult(source.format, dst_format, dst, files, n_tensors, n_bytes)


# ----- from_pretrained on a GPT-2 checkpoint ----------------------------------------------------------------


def load_hf_gpt2(
    src: str | os.PathLike, config_class: type[GPTScratchConfig], kwargs: Mapping[str, Any]
) -> tuple[GPTScratchConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """A transformers GPT-2 checkpoint (folder or Hub id) as our config and state dict, for `from_pretrained`.

    kwargs: `from_pretrained`'s keyword arguments. The download ones (`cache_dir`, `revision`, `token`, ...)
        locate the files; `config` (one of ours) replaces the converted config, which must fit the weights;
        otherwise the remaining keyword arguments that name config fields override them, as
        `from_pretrained` does. A `dtype` other than "auto" is applied while converting, so the fp32 copy
        is never held. The converted config keeps the checkpoint's dtype, as `GPT2LMHeadModel` reads it.

    Returns the config (of `config_class`), the state dict (converted one tensor at a time; tensors that need
    no transpose or split stay memory-mapped, as transformers' loader leaves them) and the keyword arguments
    left for `from_pretrained`.

    Raises:
        ValueError: a GPT-2 variant this architecture does not implement, unreadable files, missing or
            unexpected keys, shapes that do not fit, or a given config that does not fit the weights.
    """
    kwargs = dict(kwargs)
    download = {k: kwargs.pop(k) for k in DOWNLOAD_KWARGS if k in kwargs}
    given = kwargs.pop("config", None)
    if given is not None and not isinstance(given, GPTScratchConfig) and not hasattr(given, "emb_dim"):
        raise ValueError(f"config must be a {config_class.__name__} for a GPT-2 checkpoint, got {type(given).__name__}")
    if given is not None and not isinstance(given, config_class):  # e.g. ours, for the class of the remote code
        given = config_class.from_dict(given.to_dict())
    source = open_source(src, "hf-gpt2", config=given, download=download)
    wanted = kwargs.get("dtype", kwargs.get("torch_dtype"))
    if given is not None:
        config = given
    else:
        # Keyword arguments naming config fields override them, as in from_pretrained; `dtype` stays a loading
        # argument, and "auto" means the checkpoint's dtype, as GPT2LMHeadModel reads it from config.json.
        dtypes = {k: kwargs.pop(k) for k in ("dtype", "torch_dtype") if k in kwargs}
        config, kwargs = config_class.from_dict(source.config.to_dict(), return_unused_kwargs=True, **kwargs)
        kwargs.update(dtypes)
        source_dict = _read_json(_resolve(src, "config.json", download))
        config.dtype = source_dict.get("dtype", source_dict.get("torch_dtype"))
    if isinstance(wanted, str) and isinstance(getattr(torch, wanted, None), torch.dtype):
        wanted = getattr(torch, wanted)
    cast = wanted if isinstance(wanted, torch.dtype) else None  # "auto" or a per-module dict: transformers casts
    keys = [k for k in source.shapes if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    state_dict = {}
    with _progress(sum(math.prod(source.shapes[k]) for k in keys) * source.dtype.itemsize, len(keys),
                   "Converting GPT-2 weights", True) as bar:
        for i, key in enumerate(keys):
            tensor = source.get(key)
            state_dict[key] = tensor.to(cast) if cast is not None else tensor
            bar.update(tensor.nbytes)
            bar.set_postfix_str(f"{i + 1}/{len(keys)} tensors", refresh=False)
    source.files.clear_cache()
    return config, state_dict, kwargs


# ----- from_pretrained: GPT-2 checkpoints, and broken files named ------------------------------------------------


def load_pretrained(cls: type, load: Callable, pretrained_model_name_or_path: str | os.PathLike | None, *model_args,
                    **kwargs):
    """`GPTScratchPreTrainedModel.from_pretrained` where the gpt_scratch package is installed (`gpt_scratch`
    sets `checkpoint_loader` to this on import). `load` is transformers' own `from_pretrained`, bound to `cls`.

    A folder or Hub id whose config.json has model_type "gpt2" (e.g. "openai-community/gpt2") is converted on the
    fly, config and weights, one tensor at a time (`load_hf_gpt2`). Our own checkpoints are loaded by transformers,
    and then held to what transformers only warns about: a tensor the model needs that the checkpoint lacks (it would
    stay randomly initialised; the tied `lm_head` excepted) or weights stored as integers (cast silently) are errors.
    Hub requests run under `gpt_scratch.network.hub_timeouts`.

    Raises:
        FileNotFoundError: a path that is neither a folder nor a Hub repo id.
        ValueError: a checkpoint that fails to load (truncated or corrupt safetensors, a corrupt index, shapes that
            do not fit the config), lacks tensors or holds integer weights: the message names the file and tensor.
    """
    if pretrained_model_name_or_path is not None:
        _check_model_source(pretrained_model_name_or_path)
    with hub_timeouts():
        if pretrained_model_name_or_path is not None and _model_type(pretrained_model_name_or_path, kwargs) == "gpt2":
            config, state_dict, kwargs = load_hf_gpt2(pretrained_model_name_or_path, cls.config_class, kwargs)
            loaded = load(None, *model_args, config=config, state_dict=state_dict, **kwargs)
            model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, info) with output_loading_info
            model.config.name_or_path = str(pretrained_model_name_or_path)
            return loaded
        try:
            loaded = load(pretrained_model_name_or_path, *model_args, **kwargs)
        except Exception as err:
            if pretrained_model_name_or_path is not None and (problem := _checkpoint_problem(
                    cls, Path(pretrained_model_name_or_path), kwargs.get("config"))) is not None:
                raise problem from err
            raise
        if pretrained_model_name_or_path is not None and kwargs.get("state_dict") is None:
            _check_loaded_weights(pretrained_model_name_or_path, loaded[0] if isinstance(loaded, tuple) else loaded,
                                  kwargs)
        return loaded


def _check_model_source(name: str | os.PathLike) -> None:
    """A path that is not a folder must at least be a Hub repo id, else the user mistyped a folder."""
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"pretrained_model_name_or_path must be a folder's path or a Hub repo id, got "
                        f"{type(name).__name__}")
    if os.path.isdir(name):
        return
    try:
        validate_repo_id(str(name))
    except ValueError:
        raise FileNotFoundError(f"no such model folder: {name} (and not a Hub repo id such as "
                                f"'openai-community/gpt2')") from None


def _model_type(src: str | os.PathLike, kwargs: Mapping[str, Any]) -> str | None:
    """config.json's model_type, or None where it cannot be read (transformers' loader then says why).

    Raises:
        ConnectionError: a Hub id, and the Hub could not be reached (see `_resolve`).
    """
    try:
        config_file = _resolve(src, "config.json", {k: kwargs[k] for k in DOWNLOAD_KWARGS if k in kwargs})
        return json.loads(config_file.read_text()).get("model_type") if config_file else None
    except ConnectionError:
        raise
    except (OSError, ValueError, AttributeError):
        return None


def _checkpoint_problem(cls: type, folder: Path, config: Any) -> Exception | None:
    """What is wrong with a local checkpoint that failed to load (no weights, a corrupt index, a broken safetensors
    file), as the error to raise, or None."""
    if not folder.is_dir():
        return None
    try:
        if not isinstance(config, GPTScratchConfig):
            config = GPTScratchConfig.from_pretrained(folder)
    except Exception:  # the config is what failed: transformers' (or the config's) error says so
        return None
    try:
        _weight_files(folder, {})
    except (ValueError, FileNotFoundError) as problem:  # no weights, a corrupt index, or one naming a missing shard
        return problem
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
    for path in sorted(folder.glob("*.safetensors")):
        if (problem := safetensors_problem(path, expected)) is not None:
            return ValueError(problem)
    return None


def _check_loaded_weights(src: str | os.PathLike, model: Any, kwargs: Mapping[str, Any]) -> None:
    """Refuse what transformers loads with a warning only: a tensor the model needs missing from the checkpoint
    (left randomly initialised) or stored as integers (cast to the model's dtype). Reads the files' headers."""
    if any(kwargs.get(name) for name in ("variant", "gguf_file", "use_safetensors")):
        return  # files named or read otherwise: transformers' own checks stand
    try:
        files = TensorFiles(_weight_files(src, {**{k: kwargs[k] for k in DOWNLOAD_KWARGS if k in kwargs},
                                                "local_files_only": True}))
    except (FileNotFoundError, ValueError, OSError):
        return  # not where we can read them: transformers' own checks stand
    prefix = f"{type(model).base_model_prefix}."
    stored = set(files.shapes) | {key.removeprefix(prefix) for key in files.shapes}
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    # A task head the checkpoint lacks entirely is new, as transformers has it: a causal LM's folder loaded into
    # GPTScratchForSequenceClassification starts its `score` afresh (the book's chapter 6). A missing part of the
    # base model, of a head the checkpoint has, or an untied `lm_head` (no LM starts with a random one) is an error.
    head = {key for key in model.state_dict() if not key.startswith(prefix) and key != "lm_head.weight"}
    fresh = head if not head & stored else set()
    missing = sorted(key for key in model.state_dict() if key not in tied | fresh and key not in stored
                     and key.removeprefix(prefix) not in stored)
    names = ", ".join(path.name for path in files.paths)
    if missing:
        raise ValueError(f"{src}: the checkpoint ({names}) lacks {len(missing)} tensors the model needs: "
                         f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''} (they would stay randomly "
                         f"initialised); does config.json belong to these weights?")
    own_dtypes = {key: tensor.dtype for key, tensor in model.state_dict().items()}
    for key, dtype in files.dtypes.items():
        own = own_dtypes.get(key, own_dtypes.get(key.removeprefix(prefix)))
        if not dtype.is_floating_point and dtype != own:  # int8 where the model holds int8 (gpt_scratch.quantize)
            raise ValueError(f"{files._file[key]}: tensor {key!r} holds {str(dtype).removeprefix('torch.')} values; "
                             f"model weights are floating point (the file was not written by save_pretrained?)")


def safetensors_problem(path: Path, expected: Mapping[str, tuple[int, ...]]) -> str | None:
    """What is wrong with one safetensors file (unreadable, truncated, a tensor of the wrong shape), or None.

    Reads only the header (8-byte length + JSON), with the standard library.
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return f"{path}: truncated or corrupt (header of {header_len} bytes in a {size}-byte file)"
            header = json.loads(f.read(header_len))
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{path}: not a readable safetensors file ({err})"
    data_size = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        end = info.get("data_offsets", [0, 0])[1]
        if end > data_size:
            return f"{path}: truncated: tensor {name!r} ends at byte {end} of the data, but only {data_size} are there"
        want = expected.get(name, expected.get(name.removeprefix("model.")))
        if want is not None and tuple(info.get("shape", ())) != want:
            return (f"{path}: tensor {name!r} has shape {tuple(info['shape'])}, but the config needs {want} "
                    f"(does config.json belong to these weights?)")
    return None



# ----- save_pretrained: the folder whole or not at all ----------------------------------------------------------


def save_pretrained(model: Any, save: Callable, save_directory: str | os.PathLike, *args, **kwargs):
    """`GPTScratchPreTrainedModel.save_pretrained` where the gpt_scratch package is installed (`gpt_scratch` sets
    `checkpoint_saver` to this on import). `save` is transformers' own `save_pretrained`, bound to `model`.

    transformers writes into a fresh folder beside `save_directory`, which then takes its place whole
    (`gpt_scratch.files.atomic_folder`): a save that fails or is interrupted (a full disk, Ctrl-C, a killed process)
    leaves the previous folder exactly as it was. The folder's other files (a tokenizer, a README, optimizer states)
    are kept; its previous weights (model.safetensors, or shards and their index, of the same `variant`) are not,
    so a re-save never mixes old and new shards. Ranks that write nothing (`is_main_process=False`, the other ranks
    of a distributed job) and distributed checkpoints call transformers' save unchanged.

    Raises:
        TypeError: `save_directory` is not a path.
        NotADirectoryError: `save_directory` is a regular file.
        OSError: the save failed part way (the message names the folder, which was left as it was).
    """
    import inspect

    if not isinstance(save_directory, (str, os.PathLike)):
        raise TypeError(f"save_directory must be a folder's path, got {type(save_directory).__name__}")
    if os.path.isfile(save_directory):
        raise NotADirectoryError(errno.ENOTDIR, f"save_directory {save_directory} is a file, not a folder: pass a "
                                                f"folder's path (a missing one is created)")
    arguments = inspect.signature(save).bind(save_directory, *args, **kwargs)
    arguments.apply_defaults()
    options = {**arguments.arguments, **arguments.arguments.get("kwargs", {})}
    # transformers finds tied weights by storage, so a tied head saved as a copy of the embedding would be written
    # twice: in a full state dict gathered from FSDP2's shards (what Trainer passes), and in the one transformers
    # gathers from tensor-parallel shards. Every rank drops it alike (gathering is collective).
    state_dict = options.get("state_dict")
    if state_dict is None and (getattr(model, "_tp_size", None) or 1) > 1:
        state_dict = model.state_dict()
    if state_dict is not None:
        arguments.arguments["state_dict"] = _without_tied_copies(model, state_dict)
        args, kwargs = arguments.args[1:], arguments.kwargs
    if options.get("distributed_checkpoint") or not model.should_save_on_this_rank(options["is_main_process"]):
        return save(save_directory, *args, **kwargs)
    if options.get("push_to_hub"):  # transformers names the repo after the folder it writes
        kwargs.setdefault("repo_id", Path(save_directory).name)
    variant = re.escape(f".{options['variant']}") if options.get("variant") else ""
    old_weights = re.compile(rf"model{variant}(-\d{{5}}-of-\d{{5}})?\.safetensors"
                             rf"|model\.safetensors\.index{variant}\.json")
    with atomic_folder(save_directory, overwrite=True, carry_over=lambda name: not old_weights.fullmatch(name)) as tmp:
        return save(tmp, *args, **kwargs)


def _without_tied_copies(model: Any, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """`state_dict` without the tied weights (`lm_head.weight` of a tied model) that hold the weight they are tied to:
    a copy of it, or (sharded) the same local shard, compared without any collective."""
    from torch.distributed.tensor import DTensor

    state_dict = dict(state_dict)
    for tied, source in model.all_tied_weights_keys.items():
        copy, original = state_dict.get(tied), state_dict.get(source)
        if not (isinstance(copy, torch.Tensor) and isinstance(original, torch.Tensor)):
            continue
        if isinstance(copy, DTensor) or isinstance(original, DTensor):
            same = isinstance(copy, DTensor) and isinstance(original, DTensor) and \
                copy.to_local().data_ptr() == original.to_local().data_ptr()
        else:
            same = torch.equal(copy, original)
        if same:
            del state_dict[tied]
    return state_dict


__all__ = [
    "SOURCE_FORMATS", "TARGET_FORMATS", "DTYPES", "TensorFiles", "SafetensorsWriter", "Source", "ConversionResult",
    "detect_format", "book_config", "check_fits", "open_source", "convert_checkpoint", "load_hf_gpt2",
    "load_pretrained", "save_pretrained", "safetensors_problem",
]
