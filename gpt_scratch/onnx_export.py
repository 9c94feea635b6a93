"""ONNX export (`gpt-scratch export onnx MODEL OUT`) with torch's dynamo exporter, for ONNX Runtime.

One graph serves the whole generation loop: the first step passes a past of length 0, every later step the
`present.*` outputs of the step before. Inputs and outputs (B batch, T new tokens, P past tokens, H heads, D head dim):

    input_ids (B, T) int64, attention_mask (B, P + T) int64, position_ids (B, T) int64,
    past_key_values.{i}.key / .value (B, H, P, D) float32, for each block i
    -> logits (B, T, vocab_size), present.{i}.key / .value (B, H, P + T, D)

Batch, new tokens and past tokens are dynamic axes. The positions are an input because a left-padded batch counts them
from the attention mask (`mask.cumsum(-1) - 1`), as `generate()` does. OUT is a folder: model.onnx (with its weights
beside it in model.onnx.data where the model is over 2 GB), the model's config.json and generation_config.json, and
the tokenizer files. `greedy_onnxruntime` is the greedy loop over such a folder.

Needs `onnxscript` to export and `onnxruntime` to run (`pip install gpt-scratch[onnx]`).
"""

import json
import logging
import os
from pathlib import Path

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from .files import atomic_folder
from .modeling_gpt_scratch import CACHE_NAME, GPTScratchForCausalLM

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"


class _DecoderWithCache(nn.Module):
    """The model's forward with the KV cache as plain tensors: past (key, value) per block in, present out."""

    def __init__(self, model: GPTScratchForCausalLM):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache = DynamicCache()
        for layer in range(len(past) // 2):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=True, **{CACHE_NAME: cache}).logits
        return (logits, *[t for layer in cache.layers for t in (layer.keys, layer.values)])


def _names(n_layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(n_layers) for kind in ("key", "value")]


def export_onnx(model: str | os.PathLike | GPTScratchForCausalLM, out: str | os.PathLike, *,
                overwrite: bool = False) -> Path:
    """Export a causal LM (one of ours, a folder or Hub id `GPTScratchForCausalLM.from_pretrained` reads, GPT-2's
    included) to the folder `out` (see the module docstring); returns the path of model.onnx.

    The model is exported in float32 with its attention implementation (sdpa by default). `out` is written beside
    itself and renamed into place when complete.

    Raises:
        ImportError: onnxscript is not installed.
        FileExistsError: `out` exists and `overwrite` is False.
        TypeError: `model` is neither a path nor a GPTScratchForCausalLM.
    """
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's translator)
    except ImportError as err:
        raise ImportError("exporting to ONNX needs onnxscript: pip install onnxscript onnxruntime (or "
                          "gpt-scratch[onnx])") from err
    if isinstance(model, (str, os.PathLike)):
        model = GPTScratchForCausalLM.from_pretrained(model, dtype=torch.float32)
    elif not isinstance(model, GPTScratchForCausalLM):
        raise TypeError(f"model must be a GPTScratchForCausalLM or a model's folder or Hub id, got "
                        f"{type(model).__name__}")
    config = model.config
    with atomic_folder(out, overwrite) as folder:
        model = model.float().eval()
        batch, tokens, past = 2, 3, 2  # example sizes; every one is a dynamic axis
        example = (torch.randint(0, config.vocab_size, (batch, tokens)), torch.ones(batch, past + tokens,
                                                                                     dtype=torch.long),
                   torch.arange(past, past + tokens).expand(batch, tokens),
                   *[torch.zeros(batch, config.n_heads, past, config.head_dim) for _ in range(2 * config.n_layers)])
        b, t, p, s = (torch.export.Dim(name) for name in ("batch", "sequence", "past_sequence", "total_sequence"))
        dynamic = {"input_ids": {0: b, 1: t}, "attention_mask": {0: b, 1: s}, "position_ids": {0: b, 1: t},
                   "past": tuple({0: b, 2: p} for _ in range(2 * config.n_layers))}
        with torch.no_grad():
            program = torch.onnx.export(
                _DecoderWithCache(model).eval(), example, dynamo=True, dynamic_shapes=dynamic, verbose=False,
                input_names=["input_ids", "attention_mask", "position_ids", *_names(config.n_layers,
                                                                                    "past_key_values")],
                output_names=["logits", *_names(config.n_layers, "present")],
            )
        program.save(str(folder / ONNX_FILE))
        config.save_pretrained(folder)
        model.generation_config.save_pretrained(folder)
        if config.vocab_size >= 50257:
            from .tokenization_gpt_scratch import load_tokenizer

            load_tokenizer(model_max_length=config.context_length).save_pretrained(folder)
    logger.info("exported %s to %s", type(model).__name__, out)
    return Path(out) / ONNX_FILE


def greedy_onnxruntime(folder: str | os.PathLike, input_ids, attention_mask=None, max_new_tokens: int = 20):
    """Greedy decoding with ONNX Runtime over a folder `export_onnx` wrote: the prompt in one step, then one token a
    step through the KV cache. `input_ids` (B, T) and `attention_mask` (B, T, 1 for real tokens; left padding) as
    numpy int64 arrays or lists; returns the new tokens, (B, max_new_tokens) int64.

    Raises:
        ValueError: `max_new_tokens` < 1, or prompt + new tokens longer than the model's context length.
        FileNotFoundError: `folder` has no model.onnx.
    """
    import numpy as np
    import onnxruntime

    folder = Path(folder)
    if not (folder / ONNX_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no {ONNX_FILE} (write one with gpt-scratch export onnx MODEL {folder})")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    config = json.loads((folder / "config.json").read_text())
    ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
    if ids.shape[1] + max_new_tokens > config["context_length"]:
        raise ValueError(f"prompt ({ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) is longer than the "
                         f"context length {config['context_length']}")
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    heads, head_dim = config["n_heads"], config["emb_dim"] // config["n_heads"]
    past = {name: np.zeros((ids.shape[0], heads, 0, head_dim), dtype=np.float32)
            for name in _names(config["n_layers"], "past_key_values")}
    new_tokens, step_ids = [], ids
    for _ in range(max_new_tokens):
        positions = (mask.cumsum(-1) - 1).clip(min=0)[:, -step_ids.shape[1]:]
        logits, *present = session.run(None, {"input_ids": step_ids, "attention_mask": mask,
                                              "position_ids": positions, **past})
        step_ids = logits[:, -1].argmax(-1).astype(np.int64)[:, None]  # (B, 1)
        new_tokens.append(step_ids)
        past = dict(zip(past, present))
        mask = np.concatenate([mask, np.ones_like(step_ids)], axis=1)
    return np.concatenate(new_tokens, axis=1)


__all__ = ["ONNX_FILE", "export_onnx", "greedy_onnxruntime"]
