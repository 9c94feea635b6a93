"""GGUF files for llama.cpp (`gpt-scratch convert --to gguf`), written with llama.cpp's own writer (the `gguf` package).

The file is what llama.cpp's `convert_hf_to_gguf.py` makes of a transformers GPT-2 folder, for its `gpt2`
architecture: the hyperparameters (`gpt2.block_count`, `gpt2.context_length`, ...), GPT-2's byte-level BPE vocabulary
and merges (OpenAI's, rebuilt from the packaged ranks) with its special tokens, and the tensors named as llama.cpp
names them (`gpt_scratch.convert.GGUF_RULES`: `token_embd`, `blk.N.attn_qkv`, ...). A tied head writes no `output`
tensor (llama.cpp reuses `token_embd`); an untied one does.

Tensor types follow llama.cpp's converter: vectors (norms, biases) and the position embedding stay F32; the matrices
take the file type: f32, f16, bf16 or q8_0 (8-bit blocks of 32 values with one f16 scale; a matrix whose rows are not a
multiple of 32 long falls back to f16, as llama.cpp's does). Tensors are read, converted and written one at a time,
into a temporary file beside the destination that is renamed into place when complete.

Needs the `gguf` package (`pip install gpt-scratch[gguf]`).
"""

import functools
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoint import ConversionResult, Source, make, open_source
from .convert import GGUF_RULES, Step, plan_to_gguf
from .files import atomic_file
from .tokenization_gpt_scratch import ENDOFTEXT, write_gpt2_vocab_files

logger = logging.getLogger(__name__)

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
_AUTO_TYPES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}  # --dtype auto: the source's
_GPT2_VOCAB = 50257
_QUANT_BLOCK = 32  # values per q8_0 block: a row's length must be a multiple of it


def gguf_type(dtype: str | None, source_dtype: str = "float32") -> str:
    """The GGUF file type for `dtype`: one of GGUF_TYPES, a torch dtype's name (float32 -> f32, float16 -> f16,
    bfloat16 -> bf16), or None/"auto" for the source's.

    Raises:
        ValueError: any other value (the message lists the accepted ones).
    """
    if dtype is None or dtype == "auto":
        dtype = source_dtype
    name = _AUTO_TYPES.get(str(dtype).removeprefix("torch."), str(dtype).lower())
    if name not in GGUF_TYPES:
        raise ValueError(f"GGUF type {dtype!r} is not supported; expected auto, {', '.join(GGUF_TYPES)} (or float32, "
                         f"float16, bfloat16)")
    return name


def _tensor_type(name: str, shape: tuple[int, ...], file_type: str):
    """The GGML type of one tensor, by llama.cpp's converter's rules."""
    from gguf import GGMLQuantizationType as T

    if len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") or name.startswith(
            "position_embd."):
        return T.F32
    if file_type == "q8_0" and shape[-1] % _QUANT_BLOCK:
        logger.warning("%s: rows of %d values are not a multiple of %d, so it is stored as f16, not q8_0", name,
                       shape[-1], _QUANT_BLOCK)
        return T.F16
    return {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}[file_type]


def _order(step: Step) -> tuple[int, int, str]:
    """Embeddings, then block by block, then the final norm and the head, as a GPT-2 checkpoint lists them."""
    parts = step.key.split(".")
    if parts[0] == "blk":
        return (1, int(parts[1]), step.key)
    return (0 if parts[0] in ("token_embd", "position_embd") else 2, 0, step.key)


@functools.lru_cache(maxsize=1)
def _gpt2_vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """GPT-2's tokens (byte-level spelling, in id order) and merges ("a b" lines), from OpenAI's files as
    `write_gpt2_vocab_files` rebuilds them."""
    with tempfile.TemporaryDirectory() as folder:
        vocab_path, merges_path = write_gpt2_vocab_files(folder)
        encoder = json.loads(vocab_path.read_text(encoding="utf-8"))
        merges = [line for line in merges_path.read_text(encoding="utf-8").splitlines()[1:] if line]
    tokens = sorted(encoder, key=encoder.__getitem__)
    if [encoder[token] for token in tokens] != list(range(_GPT2_VOCAB)):
        raise ValueError("GPT-2's vocabulary must hold ids 0..50256 once each")  # the packaged ranks are checked
    return tuple(tokens), tuple(merges)


def _add_metadata(writer: Any, source: Source, name: str, file_type: str) -> None:
    from gguf import GGML_QUANT_VERSION, GGUFType, LlamaFileType, TokenType

    config = source.config
    writer.add_type(GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type({"f32": LlamaFileType.ALL_F32, "f16": LlamaFileType.MOSTLY_F16,
                          "bf16": LlamaFileType.MOSTLY_BF16, "q8_0": LlamaFileType.MOSTLY_Q8_0}[file_type])
    writer.add_quantization_version(GGML_QUANT_VERSION)
    writer.add_block_count(config.n_layers)
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.emb_dim)
    writer.add_feed_forward_length(4 * config.emb_dim)
    writer.add_head_count(config.n_heads)
    writer.add_layer_norm_eps(config.layer_norm_eps)

    tokens, merges = (list(items) for items in _gpt2_vocabulary())
    types = [TokenType.NORMAL] * (_GPT2_VOCAB - 1) + [TokenType.CONTROL]  # <|endoftext|> is the one special token
    # A vocabulary padded past GPT-2's (e.g. to 50304) gets placeholder tokens, as llama.cpp's converter writes them.
    tokens += [f"[PAD{i}]" for i in range(_GPT2_VOCAB, config.vocab_size)]
    types += [TokenType.USER_DEFINED] * (config.vocab_size - _GPT2_VOCAB)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # llama.cpp's name for GPT-2's pre-tokenizer regex
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{kind}_token_id")
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    writer.add_unk_token_id(tokens.index(ENDOFTEXT))  # as GPT2Tokenizer: byte-level BPE never needs it
    writer.add_add_bos_token(False)  # GPT-2 starts no text with <|endoftext|>; neither does our tokenizer


def convert_to_gguf(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    src_format: str = "auto",
    book_config_spec: str | Mapping[str, Any] | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    download: Mapping[str, Any] | None = None,
) -> ConversionResult:
    """Write any checkpoint `convert_checkpoint` reads (ours, a transformers GPT-2, the book's) as one GGUF file that
    llama.cpp runs with its `gpt2` architecture.

    dst: the .gguf file, written beside itself and renamed into place when complete; an existing one is refused
        unless `overwrite`.
    dtype: the file type, "f32", "f16", "bf16" or "q8_0" (see `gguf_type`); None/"auto" for the source's.

    Raises:
        ImportError: the `gguf` package is not installed.
        FileNotFoundError / FileExistsError / ValueError: as `convert_checkpoint`; also a ValueError for a model whose
            vocabulary is smaller than GPT-2's (the file carries GPT-2's tokenizer) or an unknown `dtype`.
    """
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise ImportError("writing GGUF needs llama.cpp's gguf package: pip install gguf (or gpt-scratch[gguf])"
                          ) from err
    if dtype not in (None, "auto"):
        gguf_type(dtype)  # a bad type fails before any work
    with atomic_file(dst, overwrite) as tmp:  # refuses an existing dst before any work
        source = open_source(src, src_format, book_config_spec=book_config_spec, download=download)
        return _write(source, Path(dst), tmp, gguf_type(dtype, str(source.dtype).removeprefix("torch.")), progress)


def _write(source: Source, dst: Path, tmp: Path, file_type: str, progress: bool) -> ConversionResult:
    import numpy as np
    import torch
    from gguf import GGML_QUANT_SIZES, GGUFWriter
    from gguf.quants import quantize
    from transformers.utils.logging import tqdm

    config = source.config
    if config.vocab_size < _GPT2_VOCAB:
        raise ValueError(f"GGUF carries GPT-2's tokenizer, so vocab_size must be at least {_GPT2_VOCAB}; "
                         f"{source.name} has vocab_size={config.vocab_size}")
    steps = sorted((s for s in plan_to_gguf(source.shapes)
                    if not (s.key == "output.weight" and config.tie_word_embeddings)), key=_order)
    zeros_like = torch.empty(0, dtype=torch.float32)

    writer = GGUFWriter(None, "gpt2")
    _add_metadata(writer, source, Path(source.name).name or source.name, file_type)
    types = {}
    for step in steps:
        types[step.key] = _tensor_type(step.key, step.shape, file_type)
        block, type_size = GGML_QUANT_SIZES[types[step.key]]
        writer.add_tensor_info(step.key, step.shape, np.dtype(np.float32), math.prod(step.shape) // block * type_size,
                               raw_dtype=types[step.key])
    logger.info("writing %s (%s, %d tensors)", dst, file_type, len(steps))
    writer.write_header_to_file(path=tmp)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    with tqdm(total=len(steps), desc="Writing GGUF", unit="tensor", disable=not progress) as bar:
        for step in steps:
            tensor = make(step, source.get, zeros_like).to(torch.float32).contiguous().numpy()
            writer.write_tensor_data(quantize(tensor, types[step.key]))
            bar.update(1)
    writer.close()
    source.files.clear_cache()
    return ConversionResult(source.format, "gguf", dst, (dst.name,), len(steps), tmp.stat().st_size)


__all__ = ["GGUF_TYPES", "GGUF_RULES", "convert_to_gguf", "gguf_type"]
