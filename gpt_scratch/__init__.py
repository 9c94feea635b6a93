"""gpt_scratch: the GPT of *Build a Large Language Model (From Scratch)* as a first-class transformers model.

`import gpt_scratch` registers the config, models and tokenizer with transformers' Auto classes
(through `register()`, which is idempotent and may be called again).
"""

from .configuration_gpt_scratch import PRESET_NAMES, GPTScratchConfig
from .modeling_gpt_scratch import GPTScratchForCausalLM, GPTScratchModel, GPTScratchPreTrainedModel
# TOKENIZER-IMPORT

__version__ = "0.1.0"


def register() -> None:
    """Register `gpt_scratch` with AutoConfig, AutoModel, AutoModelForCausalLM and AutoTokenizer."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    AutoConfig.register(GPTScratchConfig.model_type, GPTScratchConfig, exist_ok=True)
    AutoModel.register(GPTScratchConfig, GPTScratchModel, exist_ok=True)
    AutoModelForCausalLM.register(GPTScratchConfig, GPTScratchForCausalLM, exist_ok=True)
    # TOKENIZER-REGISTER


register()

__all__ = [
    "GPTScratchConfig",
    "GPTScratchModel",
    "GPTScratchForCausalLM",
    "GPTScratchPreTrainedModel",
    "PRESET_NAMES",
    "load_tokenizer",
    "register",
]
