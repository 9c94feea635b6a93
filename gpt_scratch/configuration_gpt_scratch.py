"""Configuration of the from-scratch GPT: the book's field names, GPT-2's presets.

This file imports only transformers, so `save_pretrained` can ship it to the Hub as remote code.
"""

from typing import Any

from transformers import GenerationConfig, PreTrainedConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

# The transformers releases this file and modeling_gpt_scratch.py are tested on, at both ends (pyproject.toml's
# dependency says the same; a test checks that they agree).
TRANSFORMERS_REQUIREMENT = "transformers>=5.23,<6"

# The four GPT-2 sizes as OpenAI released them: query/key/value biases on, output head tied to the
# token embedding, 50257-token vocabulary, 1024 positions.
_GPT2_SIZES = {
    "gpt2": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}
# The sizes as the released checkpoints count them, and as the GPT-2 paper (table 2) spells them.
_PRESET_ALIASES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl",
                   "117M": "gpt2", "345M": "gpt2-medium", "762M": "gpt2-large", "1542M": "gpt2-xl"}
PRESET_NAMES = tuple(_GPT2_SIZES) + tuple(_PRESET_ALIASES)
# What `quantization` may be: None (the weights in the model's dtype) or "int8" (weight-only, per output row).
QUANTIZATIONS = (None, "int8")

# Written into every config.json, so a saved folder (with the code files `save_pretrained` copies beside
# it) loads through the Auto classes with `trust_remote_code=True` where gpt_scratch is not installed.

class _Unset(int):
    """The special token ids' default, <|endoftext|> (50256), told apart from the same id given explicitly: it
    applies only where the vocabulary has it (a 99-token vocabulary gets None), while an explicit id outside the
    vocabulary is an error."""


_ENDOFTEXT = _Unset(50256)

# Other spellings of the book's fields, accepted as keyword arguments: the book's `dropout` (some chapters' seed dict)
# and GPT2Config's names, so a GPT2Config's dict or a GPT-2 user's habits build the same model.
_ALIASES = {"dropout": "drop_rate", "n_head": "n_heads", "n_embd": "emb_dim", "n_layer": "n_layers",
            "n_positions": "context_length"}
# Keys transformers itself passes to every config, or handles in PreTrainedConfig.__post_init__: not unknown.
_TRANSFORMERS_KEYS = {"auto_map", "model_type", "name_or_path", "_name_or_path", "_commit_hash", "torch_dtype",
                      "num_labels", "output_attentions", "attn_implementation", "experts_implementation",
                      "per_layer_config", "_attn_implementation_internal", "_experts_implementation_internal"}

AUTO_MAP = {
    "AutoConfig": "configuration_gpt_scratch.GPTScratchConfig",
    "AutoModel": "modeling_gpt_scratch.GPTScratchModel",
    "AutoModelForCausalLM": "modeling_gpt_scratch.GPTScratchForCausalLM",
    "AutoModelForSequenceClassification": "modeling_gpt_scratch.GPTScratchForSequenceClassification",
}


class GPTScratchConfig(PreTrainedConfig):
    """Configuration of `GPTScratchModel` / `GPTScratchForCausalLM`.

    The defaults are the book's `GPT_CONFIG_124M` (untied output head, no query/key/value bias, and
    <|endoftext|> = 50256 as bos/eos/pad, or None where the vocabulary is smaller);
    `GPTScratchConfig.from_preset("gpt2")` gives GPT-2 as released. The book's seed spelling
    `dropout=` is accepted for `drop_rate`, GPT2Config's names (`n_head`, `n_embd`, `n_layer`,
    `n_positions`) for the book's fields, and the standard transformers names (`hidden_size`,
    `num_attention_heads`, `num_hidden_layers`, `max_position_embeddings`) read and write them.
    Keys it does not know are kept as attributes, with a warning (a misspelt field would otherwise
    leave its default in place without a word).

    Raises:
        ValueError: a size that is not a positive integer, `emb_dim` not divisible by `n_heads`,
            `drop_rate` outside [0, 1), a non-positive `layer_norm_eps`/`initializer_range`, a
            special token id outside [0, vocab_size), or a field given under two names with two values.
    """

    model_type = "gpt_scratch"
    _auto_class = "AutoConfig"  # save_pretrained copies this file beside config.json
    attribute_map = {
        "hidden_size": "emb_dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "max_position_embeddings": "context_length",
    }
    # Tensor parallelism (`from_pretrained(..., tp_plan="auto")`, and the serving engines that read it), Megatron's
    # split: queries, keys, values and the feed-forward's expansion by output columns (each rank holds some heads),
    # the two projections back into the residual stream by input rows (one all-reduce per sublayer). Linear layers
    # only: vLLM's and SGLang's transformers backends read this plan, and SGLang refuses an embedding style.
    base_model_tp_plan = {
        "trf_blocks.*.att.W_query": "colwise",
        "trf_blocks.*.att.W_key": "colwise",
        "trf_blocks.*.att.W_value": "colwise",
        "trf_blocks.*.att.out_proj": "rowwise",
        "trf_blocks.*.ff.layers.expand": "colwise",
        "trf_blocks.*.ff.layers.project": "rowwise",
    }
    # Pipeline parallelism: which inputs each top-level stage takes and what it hands on.
    base_model_pp_plan = {
        "tok_emb": (["input_ids"], ["inputs_embeds"]),
        "trf_blocks": (["hidden_states", "attention_mask"], ["hidden_states"]),
        "final_norm": (["hidden_states"], ["hidden_states"]),
    }

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    use_cache: bool = True
    quantization: str | None = None  # "int8": weight-only int8 Linear layers (gpt_scratch.quantize)
    bos_token_id: int | None = _ENDOFTEXT
    eos_token_id: int | None = _ENDOFTEXT
    pad_token_id: int | None = _ENDOFTEXT

    def __post_init__(self, **kwargs: Any) -> None:
        for alias, name in _ALIASES.items():
            if alias in kwargs:
                value, default = kwargs.pop(alias), self.__dataclass_fields__[name].default
                if getattr(self, name) not in (default, value):
                    raise ValueError(f"got both {name}={getattr(self, name)!r} and {alias}={value!r} (another name "
                                     f"for {name}); pass only one")
                setattr(self, name, value)
        unknown = sorted(set(kwargs) - _TRANSFORMERS_KEYS - set(GenerationConfig._get_default_generation_params()))
        if unknown:
            logger.warning("GPTScratchConfig does not know %s: kept, but the model does not read it (the fields "
                           "are %s)", ", ".join(map(repr, unknown)),
                           ", ".join(GPTScratchConfig.__annotations__))
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if type(value) is _Unset:  # not given: <|endoftext|> where the vocabulary has it
                setattr(self, name, int(value) if isinstance(self.vocab_size, int) and value < self.vocab_size
                        else None)
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads}) so every head "
                f"gets emb_dim // n_heads channels"
            )
        if isinstance(self.drop_rate, bool) or not isinstance(self.drop_rate, (int, float)):
            raise ValueError(f"drop_rate must be a number in [0, 1), got {self.drop_rate!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("qkv_bias", "tie_word_embeddings", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.quantization is not None and self.tie_word_embeddings:
            raise ValueError("a quantized model has its own int8 output head: tie_word_embeddings must be False")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value < self.vocab_size):
                raise ValueError(
                    f"{name} must be None or an integer in [0, {self.vocab_size}) (the vocabulary), got {value!r}"
                )

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> tuple[dict[str, Any], dict]:
        """transformers' reader of config.json, refusing another model's config (transformers only warns, then
        builds this model from fields that mean something else)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if not isinstance(config_dict, dict):
            raise ValueError(f"{pretrained_model_name_or_path}: config.json holds a {type(config_dict).__name__}, "
                             f"not a JSON object of config fields")
        model_type = config_dict.get("model_type")
        if model_type is not None and model_type != cls.model_type:
            hint = (": a transformers GPT-2 checkpoint, which GPTScratchForCausalLM.from_pretrained converts where the "
                    "gpt_scratch package is installed (pip install gpt-scratch)" if model_type == "gpt2" else "")
            raise ValueError(f"{pretrained_model_name_or_path}: config.json has model_type {model_type!r}, not "
                             f"{cls.model_type!r}{hint}")
        return config_dict, kwargs

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GPTScratchConfig":
        """GPT-2 as OpenAI released it: "gpt2"/"124M", "gpt2-medium"/"355M", "gpt2-large"/"774M",
        "gpt2-xl"/"1558M". Keyword overrides (e.g. `drop_rate=0.0`) apply on top.

        Raises:
            ValueError: an unknown preset name (the message lists the valid ones).
        """
        key = _PRESET_ALIASES.get(name, name)
        if key not in _GPT2_SIZES:
            raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
        fields = {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.1, "qkv_bias": True,
                  "tie_word_embeddings": True, **_GPT2_SIZES[key], **overrides}
        return cls(**fields)

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads


__all__ = ["GPTScratchConfig", "PRESET_NAMES", "QUANTIZATIONS", "TRANSFORMERS_REQUIREMENT"]
