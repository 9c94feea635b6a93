"""Weight-only int8 quantisation: `quantize(model, "int8")`, the model's Linear layers as `Int8Linear`.

Each Linear layer's weight becomes int8 with one scale per output row (the output head included), converted in place,
one layer at a time; the embeddings and LayerNorms stay in the model's dtype, and so do the activations (bf16 on a CPU:
torch's `_weight_int8pack_mm` multiplies bf16 activations by the int8 matrix). A tied output head gets its own int8
matrix, since the token embedding is looked up in the model's dtype: the config says `tie_word_embeddings=False` and
`quantization="int8"`, and `save_pretrained` writes the int8 weights and their scales, which `from_pretrained` (with
or without gpt_scratch installed: `Int8Linear` is part of the model's own code) loads again as int8 layers.
"""

import torch
from torch import nn

from .configuration_gpt_scratch import QUANTIZATIONS
from .modeling_gpt_scratch import GPTScratchPreTrainedModel

__all__ = ["quantize"]


@torch.no_grad()
def quantize(model: GPTScratchPreTrainedModel, method: str = "int8") -> GPTScratchPreTrainedModel:
    """Quantise `model`'s Linear layers in place and return it; cast it to the activations' dtype first
    (`model.to(torch.bfloat16)`: the scales take the model's dtype).

    Raises:
        TypeError: not a gpt_scratch model.
        ValueError: an unknown method, or a model quantised already.
    """
    if not isinstance(model, GPTScratchPreTrainedModel):
        raise TypeError(f"quantize takes a gpt_scratch model, got {type(model).__name__}")
    if method not in QUANTIZATIONS[1:]:
        raise ValueError(f"unknown quantization {method!r}; expected one of {', '.join(QUANTIZATIONS[1:])}")
    if model.config.quantization is not None:
        raise ValueError(f"the model is quantized already ({model.config.quantization})")
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if model.config.tie_word_embeddings and isinstance(head, nn.Linear):
        # The head's int8 matrix is its own from here on: the embedding keeps the float one for its lookups.
        head.weight = nn.Parameter(head.weight.detach(), requires_grad=False)
        model.config.tie_word_embeddings = False
        model.all_tied_weights_keys = {}
    model.config.quantization = method
    model.quantize_linears()
    return model
