"""gpt_scratch: the GPT of *Build a Large Language Model (From Scratch)* as a first-class transformers model.

`import gpt_scratch` registers the config, models and tokenizer with transformers' Auto classes and lets the
models' `from_pretrained` read transformers GPT-2 checkpoints (through `register()`, which is idempotent and may be
called again).
"""

import importlib.abc
import importlib.util
import sys

from .configuration_gpt_scratch import PRESET_NAMES, TRANSFORMERS_REQUIREMENT, GPTScratchConfig
from .data import TokenWindowDataset, collate_windows, tokenize_file
from .hub import HubPushError, push_to_hub
from .modeling_gpt_scratch import (
    GPTScratchForCausalLM,
    GPTScratchForSequenceClassification,
    GPTScratchModel,
    GPTScratchPreTrainedModel,
)
from .quantization import quantize
from .scoring import SequenceScore, score_texts
from .tokenization_gpt_scratch import load_tokenizer

__version__ = "0.1.0"


def register() -> None:
    """Register `gpt_scratch` with AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification and
    AutoTokenizer, and, where PEFT is installed, give LoRA its default target modules for `gpt_scratch` models."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    from .checkpoint import load_pretrained, save_pretrained
    from .tokenization_gpt_scratch import register_auto_tokenizer

    AutoConfig.register(GPTScratchConfig.model_type, GPTScratchConfig, exist_ok=True)
    AutoModel.register(GPTScratchConfig, GPTScratchModel, exist_ok=True)
    AutoModelForCausalLM.register(GPTScratchConfig, GPTScratchForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(GPTScratchConfig, GPTScratchForSequenceClassification, exist_ok=True)
    register_auto_tokenizer()
    # from_pretrained also reads transformers' GPT-2 checkpoints, and names the broken file of a failed load.
    GPTScratchPreTrainedModel.checkpoint_loader = staticmethod(load_pretrained)
    # save_pretrained writes the folder whole or not at all (a failed save leaves the previous one as it was).
    GPTScratchPreTrainedModel.checkpoint_saver = staticmethod(save_pretrained)
    _register_lora_targets()


# LoRA's default target modules for `gpt_scratch` models: the query, key and value projections, the weights PEFT's
# default for GPT-2 (`c_attn`, its fused query|key|value) adapts, so `LoraConfig()` needs no `target_modules`.
LORA_TARGET_MODULES = ["W_query", "W_key", "W_value"]


def _register_lora_targets() -> None:
    """Add LORA_TARGET_MODULES to PEFT's table of defaults (keyed by model_type) when PEFT is imported.

    Importing PEFT takes about 0.16 s, so `import gpt_scratch` does not: where PEFT is not imported yet, a finder on
    sys.meta_path adds the defaults as PEFT's constants module is first imported, and then removes itself."""
    if "peft.utils.constants" in sys.modules:
        _add_lora_targets(sys.modules["peft.utils.constants"])
    elif importlib.util.find_spec("peft") is not None and not any(
            isinstance(finder, _LoraTargetsOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LoraTargetsOnImport())


def _add_lora_targets(constants) -> None:
    # A PEFT that moved its table: LoraConfig then needs target_modules, as for any model PEFT does not know.
    lora_defaults = getattr(constants, "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", None)
    if isinstance(lora_defaults, dict):
        lora_defaults.setdefault(GPTScratchConfig.model_type, list(LORA_TARGET_MODULES))


class _LoraTargetsOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `peft.utils.constants` is imported, it lets the usual finders find it, and runs
    `_add_lora_targets` on the module once it has loaded."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "peft.utils.constants":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            load = spec.loader.exec_module

            def load_and_register(module) -> None:
                load(module)
                _add_lora_targets(module)

            spec.loader.exec_module = load_and_register
        return spec


register()

__all__ = [
    "GPTScratchConfig",
    "GPTScratchModel",
    "GPTScratchForCausalLM",
    "GPTScratchForSequenceClassification",
    "GPTScratchPreTrainedModel",
    "LORA_TARGET_MODULES",
    "PRESET_NAMES",
    "load_tokenizer",
    "register",
    "tokenize_file",
    "TokenWindowDataset",
    "collate_windows",
    "score_texts",
    "SequenceScore",
    "push_to_hub",
    "HubPushError",
    "quantize",
    "TRANSFORMERS_REQUIREMENT",
]
