"""gpt_scratch: the GPT of *Build a Large Language Model (From Scratch)* as a first-class transformers model.

`import gpt_scratch` registers the config, models and tokenizer with transformers' Auto classes and lets the
models' `from_pretrained` read transformers GPT-2 checkpoints (through `register()`, which is idempotent and may be
called again).
"""

from .configuration_gpt_scratch import PRESET_NAMES, TRANSFORMERS_REQUIREMENT, GPTScratchConfig
from .data import TokenWindowDataset, collate_windows, tokenize_file
from .hub import HubPushError, push_to_hub
from .modeling_gpt_scratch import GPTScratchForCausalLM, GPTScratchModel, GPTScratchPreTrainedModel
from .scoring import SequenceScore, score_texts
from .tokenization_gpt_scratch import load_tokenizer

__version__ = "0.1.0"


def register() -> None:
    """Register `gpt_scratch` with AutoConfig, AutoModel, AutoModelForCausalLM and AutoTokenizer."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from .checkpoint import load_pretrained, save_pretrained
    from .tokenization_gpt_scratch import register_auto_tokenizer

    AutoConfig.register(GPTScratchConfig.model_type, GPTScratchConfig, exist_ok=True)
    AutoModel.register(GPTScratchConfig, GPTScratchModel, exist_ok=True)
    AutoModelForCausalLM.register(GPTScratchConfig, GPTScratchForCausalLM, exist_ok=True)
    register_auto_tokenizer()
    # from_pretrained also reads transformers' GPT-2 checkpoints, and names the broken file of a failed load.
    GPTScratchPreTrainedModel.checkpoint_loader = staticmethod(load_pretrained)
    # save_pretrained writes the folder whole or not at all (a failed save leaves the previous one as it was).
    GPTScratchPreTrainedModel.checkpoint_saver = staticmethod(save_pretrained)


register()

__all__ = [
    "GPTScratchConfig",
    "GPTScratchModel",
    "GPTScratchForCausalLM",
    "GPTScratchPreTrainedModel",
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
    "TRANSFORMERS_REQUIREMENT",
]
