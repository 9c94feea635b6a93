"""Models by name, as `gpt-scratch generate`, `eval`, `info` and `train --init` take them: find, load, describe, sample.

A MODEL is
- a folder written by `save_pretrained` (ours, or any transformers causal LM: a GPT-2 folder loads as
  transformers' own `GPT2LMHeadModel`),
- a Hub id (downloaded into the Hugging Face cache, as `from_pretrained` does),
- the book's state dict (`torch.save(model.state_dict(), "model.pth")`) with its config (a preset or the book's
  config dict), or a folder of model.pth + config.json as `gpt-scratch convert --to book` writes it.

The tokenizer is the model's own (its folder's or repo's tokenizer files), else GPT-2's (`load_tokenizer`) for a
model with GPT-2's 50,257-token vocabulary.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .configuration_gpt_scratch import PRESET_NAMES, TRANSFORMERS_REQUIREMENT, GPTScratchConfig

__all__ = ["LoadedModel", "ModelInfo", "check_model", "model_config", "context_length_of", "load_tokenizer_for",
           "load_model", "describe_model", "encode_prompt", "generation_options",
           "generate_text"]

GPT2_VOCAB_SIZE = 50257
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")
_BOOK_WEIGHTS = "model.pth"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ----- finding ---------------------------------------------------------------------------------------------


def check_model(spec: str | os.PathLike, book_config: str | Mapping[str, Any] | None = None) -> str:
    """What kind of model `spec` names, from the local files alone (no download, no tensor read): "book" (a .pth
    state dict, or a folder of model.pth + the book's config.json), "transformers" (a folder with a config.json
    that has a model_type) or "hub" (not a local path, so a Hub id, checked when loaded).

    Raises:
        FileNotFoundError: a path that does not exist, or a folder that holds no model.
        ValueError: an unreadable config.json, or the book's state dict without `book_config` (the weights do not
            say the number of heads; `book_config` is ignored for other models).
    """
    path = Path(spec)
    if path.is_file():
        kind = "book"
    elif path.is_dir():
        config_file = path / "config.json"
        if config_file.is_file():
            config = _read_json(config_file)
            kind = "transformers" if "model_type" in config else "book" if "emb_dim" in config else None
            if kind is None:
                raise ValueError(f"{config_file} has no model_type: not a transformers model folder, nor the "
                                 f"book's config dict")
        elif (path / _BOOK_WEIGHTS).is_file():
            kind = "book"
        else:
            raise FileNotFoundError(
                f"{path} is not a model folder: it has no config.json (expected a folder written by save_pretrained "
                f"or gpt-scratch train, a GPT-2 folder, a Hub id, or the book's .pth with --config)"
            )
    elif _looks_like_repo_id(str(spec)):
        kind = "hub"
    else:
        raise FileNotFoundError(f"no such file or folder: {spec} (and it is not a Hub model id)")
    if kind == "book" and path.is_file() and book_config is None:
        raise ValueError(f"{spec} is the book's state dict, which does not say how many attention heads the model "
                         f"has: pass its config, e.g. --config 124M or --config '{{\"n_heads\": 12, ...}}'")
    return kind


def _looks_like_repo_id(name: str) -> bool:
    from huggingface_hub.utils import validate_repo_id

    if name.startswith((".", "/", "~")) or name.endswith(("/", ".pth", ".pt", ".bin", ".safetensors", ".txt")):
        return False
    try:
        validate_repo_id(name)
    except ValueError:
        return False
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is not a readable JSON file ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value


# ----- loading ---------------------------------------------------------------------------------------------


def model_config(spec: str | os.PathLike, book_config: str | Mapping[str, Any] | None = None):
    """MODEL's config, without its weights: transformers' `AutoConfig` for a folder or Hub id (ours converted
    GPT-2 configs are read as they are), ours from the tensor headers and `book_config` for the book's state dict.

    Raises:
        FileNotFoundError, ValueError: as `check_model`, or a config that cannot be read.
    """
    kind = check_model(spec, book_config)
    if kind == "book":
        from .checkpoint import open_source

        return open_source(spec, "book", book_config_spec=book_config).config
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(spec))


def context_length_of(config) -> int | None:
    """The most tokens a model attends to (its position table), where its config says."""
    return getattr(config, "max_position_embeddings", None)


def load_tokenizer_for(spec: str | os.PathLike, config) -> PreTrainedTokenizerBase:
    """MODEL's own tokenizer files if it has them, else GPT-2's for a model with GPT-2's vocabulary; the end token
    pads where the tokenizer has no pad token (as GPT-2's own has none).

    Raises:
        ValueError: no tokenizer files, and a vocabulary that is not GPT-2's.
    """
    from transformers import AutoTokenizer
    from transformers.utils import cached_file

    from .tokenization_gpt_scratch import load_tokenizer

    path = Path(spec)
    local = path.exists()
    if local:
        has_files = path.is_dir() and any((path / name).is_file() for name in _TOKENIZER_FILES)
    else:
        has_files = any(cached_file(str(spec), name, _raise_exceptions_for_missing_entries=False,
                                    _raise_exceptions_for_connection_errors=False) for name in _TOKENIZER_FILES)
    if has_files:
        tokenizer = AutoTokenizer.from_pretrained(str(spec))
    elif config.vocab_size == GPT2_VOCAB_SIZE:
        tokenizer = load_tokenizer(model_max_length=context_length_of(config) or 1024)
    else:
        raise ValueError(f"{spec} has no tokenizer files, and its vocabulary ({config.vocab_size} tokens) is not "
                         f"GPT-2's ({GPT2_VOCAB_SIZE}): save its tokenizer beside it")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass
class LoadedModel:
    """A model in eval mode, its tokenizer, and what it was loaded from ("book", "transformers" or "hub")."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    kind: str

    @property
    def context_length(self) -> int | None:
        return context_length_of(self.model.config)


def load_model(
    spec: str | os.PathLike,
    *,
    book_config: str | Mapping[str, Any] | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    quantize: str | None = None,
) -> LoadedModel:
    """Load MODEL (see the module docstring) in eval mode, with `tokenizer` or its own (`load_tokenizer_for`).

    dtype: "auto" (the checkpoint's; bfloat16 with `quantize`), "float32", "bfloat16" or "float16".
    quantize: "int8" loads MODEL as gpt_scratch's model (a GPT-2 checkpoint converted) and quantises its Linear
        layers (`gpt_scratch.quantize`); a model saved quantised is loaded as it is.

    Raises:
        FileNotFoundError, ValueError: as `check_model`, or files that cannot be read as a model.
        OSError: a Hub id that cannot be downloaded (transformers' message).
    """
    from transformers import AutoModelForCausalLM

    from .modeling_gpt_scratch import GPTScratchForCausalLM

    kind = check_model(spec, book_config)
    dtype = _dtype(torch.bfloat16 if quantize is not None and dtype == "auto" else dtype)
    if kind == "book":
        from .checkpoint import open_source

        source = open_source(spec, "book", book_config_spec=book_config)
        state_dict = {key: source.get(key) for key in source.shapes}
        model = GPTScratchForCausalLM.from_pretrained(None, config=source.config, state_dict=state_dict, dtype=dtype)
    elif quantize is not None:
        model = GPTScratchForCausalLM.from_pretrained(str(spec), dtype=dtype)  # ours, or GPT-2's converted
    else:
        model = AutoModelForCausalLM.from_pretrained(str(spec), dtype=dtype)
    if quantize is not None and model.config.quantization is None:
        from .quantization import quantize as quantize_model

        quantize_model(model, quantize)
    if device is not None:
        model = model.to(device)
    model.eval()
    return LoadedModel(model, tokenizer or load_tokenizer_for(spec, model.config), str(spec), kind)


def _dtype(dtype: str | torch.dtype) -> str | torch.dtype:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; expected auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


# ----- describing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What `gpt-scratch info` shows about a model of this architecture (ours, GPT-2's or the book's).

    parameters: exact, a tied output head counted once. kv_cache_values_per_token: keys and values of every layer
    for one token (multiply by the dtype's size for bytes). files: (name, bytes) of the files that make the model.
    """

    name: str
    format: str
    config: GPTScratchConfig
    preset: str | None
    parameters: int
    dtype: str | None
    files: tuple[tuple[str, int], ...]
    requirement: str
    saved_with: str | None

    @property
    def kv_cache_values_per_token(self) -> int:
        return 2 * self.config.n_layers * self.config.emb_dim

    def weight_bytes(self, dtype: torch.dtype) -> int:
        return self.parameters * dtype.itemsize


def describe_model(spec: str | os.PathLike, book_config: str | Mapping[str, Any] | None = None) -> ModelInfo:
    """Describe our folder, a transformers GPT-2 folder or Hub repo, or the book's state dict, from its config and
    file headers (no weights are loaded; for a Hub repo only config.json is downloaded).

    Raises:
        FileNotFoundError, ValueError: as `check_model`; a model of another architecture.
        OSError: a Hub repo that cannot be reached.
    """
    from .convert import config_from_hf_gpt2

    kind = check_model(spec, book_config)
    saved_with = None
    if kind == "book":
        from .checkpoint import open_source

        source = open_source(spec, "book", book_config_spec=book_config)
        config, dtype, fmt = source.config, str(source.dtype).removeprefix("torch."), "the book's GPTModel state dict"
        requirement = "torch (the book's GPTModel); `gpt-scratch convert` makes a transformers folder of it"
    else:
        raw = _read_json(_config_file(spec))
        model_type = raw.get("model_type")
        saved_with = raw.get("transformers_version")
        dtype = raw.get("dtype") or raw.get("torch_dtype")
        if model_type == GPTScratchConfig.model_type:
            config, fmt, requirement = GPTScratchConfig.from_dict(raw), "gpt_scratch", TRANSFORMERS_REQUIREMENT
        elif model_type == "gpt2":
            config, fmt = config_from_hf_gpt2(raw), "transformers GPT-2 (GPT2LMHeadModel)"
            requirement = "transformers (GPT-2 is built in); gpt_scratch reads it too"
        else:
            raise ValueError(f"{spec} is a {model_type!r} model; info describes gpt_scratch, GPT-2 and the book's "
                             f"checkpoints")
    with torch.device("meta"):
        from .modeling_gpt_scratch import GPTScratchForCausalLM

        parameters = sum(p.numel() for p in GPTScratchForCausalLM(config).parameters())
    return ModelInfo(str(spec), fmt, config, _preset_of(config), parameters, dtype, _files(spec, kind), requirement,
                     saved_with)


def _config_file(spec: str | os.PathLike) -> Path:
    from transformers.utils import cached_file

    return Path(cached_file(str(spec), "config.json"))


def _preset_of(config: GPTScratchConfig) -> str | None:
    """"gpt2 (124M, 117M)" where the architecture is a GPT-2 preset's, "the book's GPT_CONFIG_124M" for the
    book's default, else None."""
    fields = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias", "tie_word_embeddings")
    names = [name for name in PRESET_NAMES
             if all(getattr(config, f) == getattr(GPTScratchConfig.from_preset(name), f) for f in fields)]
    if names:
        return f"{names[0]} ({', '.join(names[1:])})"
    book = GPTScratchConfig()
    if all(getattr(config, f) == getattr(book, f) for f in fields):
        return "the book's GPT_CONFIG_124M"
    return None


def _files(spec: str | os.PathLike, kind: str) -> tuple[tuple[str, int], ...]:
    path = Path(spec)
    if path.is_file():
        return ((path.name, path.stat().st_size),)
    if path.is_dir():
        return tuple((p.name, p.stat().st_size) for p in sorted(path.iterdir()) if p.is_file())
    from huggingface_hub import HfApi

    info = HfApi().model_info(str(spec), files_metadata=True)
    return tuple((s.rfilename, s.size or 0) for s in sorted(info.siblings or [], key=lambda s: s.rfilename))


# ----- generating ------------------------------------------------------------------------------------------


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int,
                  context_length: int | None) -> torch.Tensor:
    """The prompt's ids, shape (1, T), checked to leave room for `max_new_tokens` in `context_length` (None: no
    limit known). An empty prompt starts from `<|endoftext|>` (the end token), as GPT-2's unconditional samples do.

    Raises:
        ValueError: max_new_tokens < 1, or prompt + max_new_tokens longer than the context.
    """
    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    ids = tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"] if prompt else []
    if not ids:
        if tokenizer.eos_token_id is None:
            raise ValueError("the prompt is empty and the tokenizer has no end token to start from")
        ids = [tokenizer.eos_token_id]
    if context_length is not None and len(ids) + max_new_tokens > context_length:
        room = context_length - len(ids)
        raise ValueError(
            f"--max-new-tokens {max_new_tokens} runs past the context: the prompt is {len(ids)} token(s) and the "
            f"model's context length is {context_length}, so at most {max(room, 0)} new tokens fit"
            + ("" if room > 0 else " (shorten the prompt)")
        )
    return torch.tensor([ids])


def generation_options(
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    num_beams: int = 1,
    num_return_sequences: int = 1,
) -> dict[str, Any]:
    """`generate()` keyword arguments for these settings, checked before any model is loaded. Sampling knobs left
    unset stay off (top_k=0, top_p=1), not at generate()'s top_k=50 default.

    Raises:
        ValueError: a setting out of range, or several sequences from greedy decoding (which makes one).
    """
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
    if num_beams < 1 or num_return_sequences < 1:
        raise ValueError(f"num_beams and num_return_sequences must be >= 1, got {num_beams} and "
                         f"{num_return_sequences}")
    if num_return_sequences > 1 and not do_sample and num_beams < num_return_sequences:
        raise ValueError(f"{num_return_sequences} sequences need sampling (--temperature, --top-k, --top-p) or at "
                         f"least as many beams (--num-beams {num_return_sequences}); greedy decoding makes one")
    options: dict[str, Any] = {"do_sample": do_sample, "num_beams": num_beams,
                               "num_return_sequences": num_return_sequences}
    if do_sample:
        options.update(temperature=temperature, top_k=top_k or 0, top_p=1.0 if top_p is None else top_p)
    if repetition_penalty is not None:
        options["repetition_penalty"] = repetition_penalty
    return options


def generate_text(loaded: LoadedModel, input_ids: torch.Tensor, *, max_new_tokens: int,
                  options: dict[str, Any] | None = None, streamer: Any = None) -> list[str]:
    """Continue `input_ids` (from `encode_prompt`) with `model.generate` and `options` (from
    `generation_options`; default greedy); returns each sequence's new text.

    `streamer` (e.g. transformers' `TextStreamer`) receives the text as it is made; as transformers' streamers,
    it takes one sequence without beam search.

    Raises:
        ValueError: a streamer with several sequences or beams.
    """
    options = generation_options() if options is None else options
    if streamer is not None and (options["num_beams"] > 1 or options["num_return_sequences"] > 1):
        raise ValueError("streaming shows one sequence without beam search")
    tokenizer = loaded.tokenizer
    input_ids = input_ids.to(loaded.model.device)
    with torch.no_grad():
        output = loaded.model.generate(
            input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, streamer=streamer, **options,
        )
    return tokenizer.batch_decode(output[:, input_ids.shape[1]:], skip_special_tokens=True)
