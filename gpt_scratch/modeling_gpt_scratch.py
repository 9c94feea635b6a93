"""The GPT of *Build a Large Language Model (From Scratch)*, ch. 4, as a transformers model.

Reads leaf-first, as the book builds it: LayerNorm, GELU, Linear and FeedForward, then attention, the transformer block,
the base model (embeddings -> blocks -> final norm) and, last, the heads: the causal LM head that generate()
drives and the book's chapter-6 classification head. Module names follow the book (`tok_emb`, `trf_blocks`,
`att.W_query`, `ff.layers`, `norm1.scale`, ...) so its readers recognise every part; the plumbing (KV cache,
masks, attention kernels, output capture, tensor-parallel plans) is transformers 5's standard machinery.

This file is the model and nothing else: it imports only torch, transformers and the configuration, so
`save_pretrained` can ship it to the Hub as remote code. Loading other checkpoint formats and diagnosing broken
files live in the gpt_scratch package (`gpt_scratch.checkpoint`).
"""

import copy
import functools
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, slice_logits_to_keep
from transformers.utils import can_return_tuple, logging
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_gpt_scratch import GPTScratchConfig

logger = logging.get_logger(__name__)

# transformers 5.24 renamed the KV cache, as a forward argument and as an output field, from `past_key_values` to
# `cache`. This file runs (as remote code) under whichever release a user has, so inside it the cache is `cache`,
# and at the edges it speaks the running release's name: `CACHE_NAME` for outputs and `create_causal_mask`, and
# `accepts_past_key_values` for callers that still pass the old name (generate, pipelines and Trainer before 5.24).
CACHE_NAME = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


def accepts_past_key_values(forward: Callable) -> Callable:
    """Let `forward(..., cache=...)` also be called as `forward(..., past_key_values=...)`."""

    @functools.wraps(forward)
    def forward_taking_either_name(self, *args, past_key_values: Cache | None = None, **kwargs):
        if past_key_values is not None:
            if kwargs.get("cache") is not None:
                raise ValueError("got both cache= and past_key_values=; pass the KV cache once (as cache=)")
            kwargs["cache"] = past_key_values
        return forward(self, *args, **kwargs)

    return forward_taking_either_name


class LayerNorm(nn.Module):
    """The book's LayerNorm (trainable `scale` and `shift`), computed by the fused kernel."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same maths as the book's (x - mean) / sqrt(biased var + eps) * scale + shift, in one kernel.
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GELU with the tanh approximation, as GPT-2 was trained with (transformers' "gelu_new")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


def _matrix_vector(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """One row times the weight as a matrix-vector product (`torch.addmv`)."""
    row = x.reshape(-1)  # (in,); shapes from the weight: a tensor-parallel rank holds a slice of it
    out = torch.mv(weight, row) if bias is None else torch.addmv(bias, weight, row)
    return out.view(*x.shape[:-1], -1)


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """oneDNN's inner product on the plain (out, in) weight (the op torch.compile's CPU backend emits; no autograd)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.cache
def _onednn_runs() -> bool:
    """Whether this torch build has oneDNN and its inner product agrees with F.linear here (checked once)."""
    if not torch.backends.mkldnn.is_available():
        return False
    x, weight, bias = torch.randn(3, 16), torch.randn(8, 16), torch.randn(8)
    try:
        return torch.allclose(_onednn(x, weight, bias), F.linear(x, weight, bias), rtol=1e-4, atol=1e-4)
    except RuntimeError:
        return False


@functools.cache
def _has_amx() -> bool:
    """Whether this CPU has Intel's AMX matrix tiles."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


class _OneDNNLinear(torch.autograd.Function):
    """`_onednn` with gradients: its forward, and the backward products autograd would run for F.linear."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return _onednn(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad_output.reshape(-1, grad_output.shape[-1])  # (N, out)
        grad_x = (grad @ weight).view(x.shape) if ctx.needs_input_grad[0] else None  # (N, out) @ (out, in)
        grad_weight = grad.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None  # (out, N) @ (N, in)
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class Linear(nn.Linear):
    """nn.Linear, with the faster of torch's CPU kernels where F.linear is slow.

    On a CPU, torch's `F.linear` hands float32 to MKL and bfloat16 to oneDNN, and neither is the fastest everywhere.
    On one of our CI machines (AMD, AVX-512 BF16) F.linear reads one row's float32 weights at 11 GB/s and oneDNN's
    inner product at 25 GB/s, and at 256 rows oneDNN is 1.3-1.5x MKL; on another (Intel, AMX) oneDNN multiplied one
    bf16 row 1.3x slower than `torch.addmv` (we think because its AMX tiles are made for many rows). So, on a CPU:
    float32 goes through oneDNN's inner product (in training too, with the same backward products as F.linear), and
    a single bf16 row on a CPU with AMX through `torch.addmv`; the rest takes F.linear. The choice follows from the
    dtype, the row count and the CPU alone, so a run repeats exactly. Autocast, a GPU, a compiled, exported or traced
    graph, and weights that a quantiser or tensor parallelism replaced by a tensor subclass take F.linear, as
    nn.Linear does, and so does everything with `Linear.use_cpu_kernels = False`. The same weights, names and state
    dict as nn.Linear (a subclass, so quantisers, PEFT and tensor-parallel plans find it); the kernels agree to
    rounding. benchmarks/RESULTS.md has the numbers.
    """

    use_cpu_kernels: ClassVar[bool] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.product(x, self.weight, self.bias)

    @classmethod
    def product(cls, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x @ weight.T + bias, by the kernel that `Linear` picks for these tensors."""
        if not cls._plain_cpu(x, weight):
            return F.linear(x, weight, bias)
        if x.dtype == torch.float32 and _onednn_runs():
            wants_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                                      or (bias is not None and bias.requires_grad))
            return _OneDNNLinear.apply(x, weight, bias) if wants_grad else _onednn(x, weight, bias)
        if x.dtype == torch.bfloat16 and x.shape[:-1].numel() == 1 and _has_amx():
            return _matrix_vector(x, weight, bias)
        return F.linear(x, weight, bias)

    @classmethod
    def _plain_cpu(cls, x: torch.Tensor, weight: torch.Tensor) -> bool:
        """Plain CPU tensors of one dtype, no autocast, no graph compiled, exported or traced."""
        if not cls.use_cpu_kernels or torch.compiler.is_compiling() or torch.compiler.is_exporting() or \
                torch.jit.is_tracing() or torch.is_autocast_enabled("cpu"):
            return False
        return type(x) is torch.Tensor and type(weight.data) is torch.Tensor and x.device.type == "cpu" and \
            x.dtype == weight.dtype and x.numel() > 0


class FeedForward(nn.Module):
    """Expand to 4x the embedding width, GELU, project back.

    The book's `layers` Sequential, with its two Linear layers named (`layers.expand`, `layers.project`; `layers[0]`
    and `layers[2]` still index them) so a tensor-parallel plan can split one by columns and the other by rows.
    """

    def __init__(self, config: GPTScratchConfig):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(
            expand=Linear(config.emb_dim, 4 * config.emb_dim),
            gelu=GELU(),
            project=Linear(4 * config.emb_dim, config.emb_dim),
        ))
        self.layers.project.writes_residual = True  # scaled initialisation, see _init_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Int8Linear(nn.Module):
    """A Linear layer whose weight is stored as int8 with one scale per output row (weight-only quantisation).

    `gpt_scratch.quantize(model, "int8")` swaps every nn.Linear for one (config `quantization="int8"`); a checkpoint
    saved so builds them again. Activations stay in the model's dtype (bf16 on a CPU): torch's
    `_weight_int8pack_mm` multiplies by the int8 matrix directly, so a decode step reads a quarter of fp32's bytes.
    Rows are scaled symmetrically, w ~ scale * q with q in [-127, 127] and scale = max |w| / 127 (LLM.int8's
    per-row absmax, without its outliers); `weight` and `scales` are buffers: the layer is for inference.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        quantized = cls(linear.in_features, linear.out_features, bias=linear.bias is not None).to(linear.weight.device)
        weight = linear.weight.float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,)
        quantized.weight = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        quantized.scales = scales.to(linear.weight.dtype)
        if linear.bias is not None:
            quantized.bias.data = linear.bias.detach()
        return quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).contiguous()  # (..., in) -> (N, in)
        if x.device.type == "cpu":
            out = torch._weight_int8pack_mm(rows, self.weight, self.scales.to(x.dtype))
        else:  # where torch has no int8 kernel: dequantise on the fly
            out = F.linear(rows, self.weight.to(x.dtype)) * self.scales.to(x.dtype)
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.view(*x.shape[:-1], self.out_features)


# Shapes in attention: B batch, T new tokens, S tokens attended to (cached + new), H heads, D head dim,
# C channels (C = H * D).
def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out, as in the book; returns (B, T, H, D) and the weights."""
    attn_scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, T, D) @ (B, H, D, S) -> (B, H, T, S)
    if attention_mask is not None:
        # create_causal_mask gives an additive mask: 0 where allowed, dtype-min where masked (future or padding).
        attn_scores = attn_scores + attention_mask
    attn_weights = torch.softmax(attn_scores, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    context = torch.matmul(attn_weights, value)  # (B, H, T, S) @ (B, H, S, D) -> (B, H, T, D)
    return context.transpose(1, 2), attn_weights  # (B, T, H, D)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with separate query/key/value projections (the book's ch. 3).

    The causal mask comes from `create_causal_mask` (so padding and the KV cache are handled), and the
    kernel from the transformers attention registry: "eager" above, "sdpa", flash or a serving engine's.
    """

    def __init__(self, config: GPTScratchConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = 1  # every head has its own keys and values
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.drop_rate
        self.is_causal = True

        self.W_query = Linear(config.emb_dim, config.emb_dim, bias=config.qkv_bias)
        self.W_key = Linear(config.emb_dim, config.emb_dim, bias=config.qkv_bias)
        self.W_value = Linear(config.emb_dim, config.emb_dim, bias=config.qkv_bias)
        self.out_proj = Linear(config.emb_dim, config.emb_dim)
        self.out_proj.writes_residual = True  # scaled initialisation, see _init_weights

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, tokens, _ = hidden_states.shape
        # -1 heads: under tensor parallelism a rank holds only some of the heads (and C / ranks channels).
        heads_shape = (batch, tokens, -1, self.head_dim)
        queries = self.W_query(hidden_states).view(heads_shape).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)
        keys = self.W_key(hidden_states).view(heads_shape).transpose(1, 2)  # (B, H, T, D)
        values = self.W_value(hidden_states).view(heads_shape).transpose(1, 2)  # (B, H, T, D)

        if cache is not None:
            # Append this step's keys/values to the cache and attend to all of them: (B, H, S, D). The kwargs go along
            # as transformers' Llama passes them: continuous batching's paged cache reads its per-batch indices there.
            keys, values = cache.update(keys, values, self.layer_idx, kwargs=kwargs)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        context, attn_weights = attention_interface(
            self,
            queries,
            keys,
            values,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        context = context.reshape(batch, tokens, -1).contiguous()  # (B, T, H, D) -> (B, T, C)
        return self.out_proj(context), attn_weights


class TransformerBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm block: x + drop(att(norm1(x))), then x + drop(ff(norm2(x)))."""

    def __init__(self, config: GPTScratchConfig, layer_idx: int):
        super().__init__()
        self.norm1 = LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.att = MultiHeadAttention(config, layer_idx)
        self.norm2 = LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.ff = FeedForward(config)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        shortcut = hidden_states
        attn_output, _ = self.att(self.norm1(hidden_states), attention_mask, cache, **kwargs)
        hidden_states = shortcut + self.drop_shortcut(attn_output)

        shortcut = hidden_states
        hidden_states = shortcut + self.drop_shortcut(self.ff(self.norm2(hidden_states)))
        return hidden_states


class GPTScratchPreTrainedModel(PreTrainedModel):
    config_class = GPTScratchConfig
    config: GPTScratchConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock"]
    _skip_keys_device_placement = [CACHE_NAME]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {"hidden_states": TransformerBlock, "attentions": MultiHeadAttention}

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm scales."""
        super()._init_weights(module)
        if isinstance(module, LayerNorm):
            init.ones_(module.scale)
            init.zeros_(module.shift)
        elif getattr(module, "writes_residual", False):
            # GPT-2 paper, sec. 2.3: each block adds two residual branches (attention and feed-forward) onto
            # the same stream, so the projections that write into it start 1/sqrt(2 * n_layers) smaller and
            # the stream's variance stays flat with depth (as in OpenAI's and Megatron-LM's code).
            std = self.config.initializer_range / math.sqrt(2 * self.config.n_layers)
            init.normal_(module.weight, mean=0.0, std=std)

    def post_init(self) -> None:
        # A checkpoint saved after `gpt_scratch.quantize` holds int8 weights: build the layers that take them.
        if self.config.quantization == "int8":
            self.quantize_linears()
        super().post_init()

    def quantize_linears(self) -> None:
        """Swap every nn.Linear for its `Int8Linear` (the float matrix freed as each is converted)."""
        for module in list(self.modules()):
            for name, child in module.named_children():
                if type(child) in (nn.Linear, Linear):
                    setattr(module, name, Int8Linear.from_linear(child))

    # Checkpoints in other formats (transformers' GPT-2) are read by the gpt_scratch package, which sets this to its
    # loader on import (`gpt_scratch.checkpoint.load_pretrained`). As remote code, this file reads its own format.
    checkpoint_loader: ClassVar[Callable | None] = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' `from_pretrained`; with the gpt_scratch package installed it also reads transformers GPT-2
        checkpoints (converted on the fly) and names the file and tensor when a checkpoint is broken."""
        if cls.checkpoint_loader is None:
            loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        else:
            loaded = cls.checkpoint_loader(cls, super().from_pretrained, pretrained_model_name_or_path, *model_args,
                                           **kwargs)
        for module in (loaded[0] if isinstance(loaded, tuple) else loaded).modules():
            if isinstance(module, Int8Linear):
                # transformers leaves the int8 tensors on the file's read-only memory map, and torch's int8 kernel
                # needs writable memory (it crashes on a read-only page): each weight gets its own.
                module.weight = module.weight.clone()
        return loaded

    # Likewise the package sets this to its saver (`gpt_scratch.checkpoint.save_pretrained`), which writes the folder
    # whole or not at all; as remote code, this file saves as transformers does.
    checkpoint_saver: ClassVar[Callable | None] = None

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' `save_pretrained`; with the gpt_scratch package installed a failed or interrupted save leaves
        the previous folder as it was (the new one is written beside it and swapped in whole)."""
        # FSDP2's fully_shard swaps the model's class for a subclass made in torch (FSDPGPTScratchForCausalLM, of
        # torch's _fsdp_init.py); transformers would copy that class's files as the model's code and name it in
        # auto_map. While saving, the model is of its own class again.
        wrapped, own = type(self), type(self)
        while own.__module__.startswith("torch."):
            own = own.__bases__[-1]  # (FSDPModule, own): the wrapped class comes last
        self.__class__ = own
        try:
            if self.checkpoint_saver is None:
                return super().save_pretrained(save_directory, *args, **kwargs)
            return self.checkpoint_saver(self, super().save_pretrained, save_directory, *args, **kwargs)
        finally:
            self.__class__ = wrapped


# The model's input edge: what would otherwise fail deep inside torch (an IndexError in an embedding), or run and be
# silently wrong (a mask shorter than the sequence), is refused here with the argument, the value and what is accepted.
# Shapes and dtypes are checked on the host; the values (ids in the vocabulary, positions and the cache in the context)
# in one reduction, so a forward waits on the device once. Both run outside torch.compile graphs.
def _check_inputs(
    config: GPTScratchConfig,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    cache: Cache | None,
    weight_dtype: torch.dtype,
) -> None:
    pending = []  # (condition on the device, message), decided together at the end

    def check(condition: bool | torch.Tensor, message: Callable[[], str]) -> None:
        if isinstance(condition, torch.Tensor):
            pending.append((condition, message))
        elif condition:
            raise ValueError(message())

    def integer(tensor: torch.Tensor) -> bool:
        return not (tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool)

    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    name, tokens = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
    for arg, value in ((name, tokens), ("position_ids", position_ids), ("attention_mask", attention_mask)):
        if value is not None and not isinstance(value, torch.Tensor):
            raise ValueError(f"{arg} must be a torch.Tensor, got {type(value).__name__}")
    if input_ids is not None:
        check(not integer(input_ids), lambda: f"input_ids must be an integer tensor (torch.long), got dtype "
                                              f"{input_ids.dtype}")
        check(input_ids.ndim != 2, lambda: f"input_ids must have shape (batch, seq_len), got shape "
                                           f"{tuple(input_ids.shape)}")
    else:
        check(inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != config.emb_dim,
              lambda: f"inputs_embeds must have shape (batch, seq_len, {config.emb_dim}), got shape "
                      f"{tuple(inputs_embeds.shape)}")
        check(inputs_embeds.dtype != weight_dtype and not torch.is_autocast_enabled(inputs_embeds.device.type),
              lambda: f"inputs_embeds has dtype {inputs_embeds.dtype}, the model's weights {weight_dtype}: pass "
                      f"inputs_embeds.to(model.dtype)")
    batch, length = tokens.shape[:2]
    check(length == 0, lambda: f"{name} holds no tokens (shape {tuple(tokens.shape)}); pass at least one per row")
    check(input_ids is not None and ((input_ids < 0) | (input_ids >= config.vocab_size)).any(),
          lambda: f"token id {input_ids[(input_ids < 0) | (input_ids >= config.vocab_size)][0].item()} is outside "
                  f"the vocabulary [0, {config.vocab_size})")

    # A cache that knows its length (not a serving engine's paged one) holds tokens that count towards the context.
    # Explicit positions without a cache may pack several sequences in one row (padding-free training).
    past = cache.get_seq_length() if isinstance(cache, Cache) else 0  # an int, or a 0-d tensor (static cache)
    counts = position_ids is None or past > 0
    check(counts & (past + length > config.context_length),
          lambda: f"sequence of {int(past) + length} tokens ({int(past)} cached + {length} new) is longer than the "
                  f"context length {config.context_length}")
    if position_ids is not None:
        check(not integer(position_ids), lambda: f"position_ids must be an integer tensor (torch.long), got dtype "
                                                 f"{position_ids.dtype}")
        check(tuple(position_ids.shape) not in ((length,), (1, length), (batch, length)),
              lambda: f"position_ids must have shape (batch, seq_len) = ({batch}, {length}), got shape "
                      f"{tuple(position_ids.shape)}")
        check(((position_ids < 0) | (position_ids >= config.context_length)).any(),
              lambda: f"position ids must lie in [0, {config.context_length}) (the context length), got values from "
                      f"{position_ids.min().item()} to {position_ids.max().item()}")
    if attention_mask is not None and attention_mask.ndim != 4:  # a 4-D mask is the caller's own, taken as given
        check(attention_mask.ndim != 2 or attention_mask.shape[0] not in (1, batch),
              lambda: f"attention_mask must have shape (batch, cached + new tokens) = ({batch}, ...), got shape "
                      f"{tuple(attention_mask.shape)}")
        check(attention_mask.shape[-1] < past + length,
              lambda: f"attention_mask has {attention_mask.shape[-1]} columns for {int(past)} cached + {length} new "
                      f"tokens; it needs one per token")
    if pending and bool(torch.stack([condition.to(tokens.device) for condition, _ in pending]).any()):  # one sync
        raise ValueError(next(message() for condition, message in pending if condition))


def _check_head_inputs(config: GPTScratchConfig, tokens: torch.Tensor | None, labels: torch.Tensor | None,
                       logits_to_keep: int | torch.Tensor) -> None:
    """The LM head's edge, beside `_check_inputs`: `logits_to_keep` and `labels` (their values cost a second
    reduction, in training only)."""
    if isinstance(logits_to_keep, bool) or not isinstance(logits_to_keep, (int, torch.Tensor)) or (
            isinstance(logits_to_keep, int) and logits_to_keep < 0):
        raise ValueError(f"logits_to_keep must be an int >= 0 (0 keeps every position, k the last k) or a tensor of "
                         f"positions, got {logits_to_keep!r}")
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of token ids (-100 to ignore), got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if isinstance(tokens, torch.Tensor) and tuple(labels.shape) != tuple(tokens.shape[:2]):
        raise ValueError(f"labels must have the inputs' shape (batch, seq_len) = {tuple(tokens.shape[:2])}, got "
                         f"{tuple(labels.shape)}")
    if not isinstance(logits_to_keep, int) or logits_to_keep != 0:
        raise ValueError("labels need logits at every position: pass logits_to_keep=0 (the default) with labels")
    bad = (labels != -100) & ((labels < 0) | (labels >= config.vocab_size))
    if bool(bad.any()):
        raise ValueError(f"label {labels[bad][0].item()} is outside the vocabulary [0, {config.vocab_size}) "
                         f"(-100 marks positions to ignore)")


class GPTScratchModel(GPTScratchPreTrainedModel):
    """Token + position embeddings, dropout, the transformer blocks and the final LayerNorm.

    Returns hidden states of shape (batch, seq_len, emb_dim).
    """

    _auto_class = "AutoModel"  # save_pretrained copies the code files beside the weights

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.trf_blocks = nn.ModuleList([TransformerBlock(config, i) for i in range(config.n_layers)])
        self.final_norm = LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tok_emb

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.tok_emb = value

    @accepts_past_key_values
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Raises ValueError for token ids outside [0, vocab_size), positions or a cached + new sequence past
        `context_length`, an empty input, an attention mask with fewer columns than tokens, or inputs of the wrong
        dtype or shape (see `_check_inputs`)."""
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        # Given positions say where the tokens sit; only without them is the cache asked (a paged cache cannot say).
        past_seen = cache.get_seq_length() if cache is not None and position_ids is None else 0
        if not torch.compiler.is_compiling():  # the checks read tensor values: skip them inside a graph
            _check_inputs(self.config, input_ids, inputs_embeds, position_ids, attention_mask, cache,
                          self.tok_emb.weight.dtype)

        if inputs_embeds is None:
            inputs_embeds = self.tok_emb(input_ids)  # (B, T) -> (B, T, C)
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen
            position_ids = position_ids.unsqueeze(0)  # (1, T)
        # Under left padding, generate() derives position_ids from the attention mask, so each
        # sequence's first real token sits at position 0 whatever padding precedes it.
        hidden_states = self.drop_emb(inputs_embeds + self.pos_emb(position_ids))  # (B, T, C)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{CACHE_NAME: cache},
        )
        for block in self.trf_blocks:
            # The cache goes by keyword: gradient checkpointing drops it by name.
            hidden_states = block(hidden_states, causal_mask, cache=cache, position_ids=position_ids, **kwargs)
        hidden_states = self.final_norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, **{CACHE_NAME: cache})


class LMHeadLoss(torch.autograd.Function):
    """The output head's next-token cross-entropy, chunk by chunk of positions, with its gradients made on the way.

    In training the (tokens x vocabulary) logits are the largest tensors by far (4 x 256 tokens x 50,257 in fp32 are
    206 MB), and autograd would keep them, their fp32 copy and the log-softmax for backward. Here they exist one chunk
    at a time: each chunk's softmax becomes d(loss)/d(logits) in place, which gives the chunk's share of the gradients
    of the hidden states and of the head's weight at once (Liger-Kernel's fused linear cross-entropy; litgpt's
    chunked_cross_entropy). Equal to `lm_head` + transformers' ForCausalLMLoss up to the order of the sums.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, divisor: torch.Tensor,
                chunk_size: int) -> torch.Tensor:
        # hidden (N, C), weight (V, C), targets (N,) with -100 for none; returns sum(-log p(target)) / divisor.
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        matrix = weight.to(dtype)  # under autocast, once for every chunk
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        # The head's gradient is summed over the chunks in the matmuls' dtype (under bf16 autocast, bf16: adding
        # each chunk's (V x C) product into a float32 sum would read and write 230 MB per chunk, slower than the
        # matmul itself; the sum is rounded once per chunk, where autograd rounds its bf16 gradient once).
        grad_weight = torch.zeros_like(weight, dtype=dtype) if ctx.needs_input_grad[1] else None
        for start in range(0, hidden.shape[0], chunk_size):
            h, t = hidden[start:start + chunk_size].to(dtype), targets[start:start + chunk_size]
            ignored = t == -100
            t = t.masked_fill(ignored, 0)
            log_probs = Linear.product(h, matrix).float()  # (n, C) @ (C, V) -> (n, V), then in place:
            log_probs -= log_probs.logsumexp(dim=-1, keepdim=True)
            total -= log_probs.gather(1, t[:, None]).squeeze(1).masked_fill(ignored, 0.0).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            grad_logits = log_probs.exp_()  # softmax - one_hot(target), zero where ignored
            grad_logits[torch.arange(len(t), device=t.device), t] -= 1.0
            grad_logits = grad_logits.masked_fill_(ignored[:, None], 0.0).to(dtype)
            if grad_hidden is not None:
                grad_hidden[start:start + chunk_size] = grad_logits @ matrix  # (n, V) @ (V, C)
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.T, h)  # (V, n) @ (n, C), summed in place
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_hidden, grad_weight, divisor)
        return total / divisor

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight, divisor = ctx.saved_tensors
        scale = grad_loss / divisor
        return (grad_hidden * scale.to(grad_hidden.dtype) if grad_hidden is not None else None,
                (grad_weight.float() * scale).to(ctx.weight_dtype) if grad_weight is not None else None, None, None,
                None)


def lm_head_loss(hidden_states: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                 num_items_in_batch: torch.Tensor | int | None = None, chunk_size: int = 256) -> torch.Tensor:
    """The shifted next-token loss of `LMHeadLoss`: hidden (B, T, C), labels (B, T), as ForCausalLMLoss has it (mean
    over the labels that are not -100, or their sum / num_items_in_batch, as Trainer asks under accumulation)."""
    targets = F.pad(labels[:, 1:], (0, 1), value=-100).reshape(-1)  # position t predicts token t + 1
    divisor = (targets != -100).sum() if num_items_in_batch is None else num_items_in_batch
    divisor = torch.as_tensor(divisor, dtype=torch.float32, device=hidden_states.device)
    return LMHeadLoss.apply(hidden_states.reshape(-1, hidden_states.shape[-1]), weight, targets, divisor, chunk_size)


class GPTScratchForCausalLM(GPTScratchPreTrainedModel, GenerationMixin):
    """The base model plus a linear output head over the vocabulary.

    With `tie_word_embeddings` (GPT-2's presets) the head shares the token embedding's matrix, as
    OpenAI trained GPT-2 (Press & Wolf, 2017); the book's default config keeps them separate.
    """

    _tied_weights_keys = {"lm_head.weight": "model.tok_emb.weight"}
    # Each rank scores part of the vocabulary, then all-gather. The token embedding is split by the same vocabulary
    # rows: a tied head shares its matrix, so both must hold the same shard (transformers splits an embedding by
    # itself only if it is named `embed_tokens`; replicated, the tied head's whole-vocabulary logits were taken for
    # this rank's slice, and the gather repeated the first half of the vocabulary).
    _tp_plan = {"lm_head": "colwise_gather_output", "model.tok_emb": "embedding_rowwise"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}
    _auto_class = "AutoModelForCausalLM"  # save_pretrained copies the code files beside the weights

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.model = GPTScratchModel(config)
        self.lm_head = Linear(config.emb_dim, config.vocab_size, bias=False)
        self.post_init()
        # generate() defaults, saved as generation_config.json: <|endoftext|> ends and pads (from the config),
        # and a bare generate() makes up to 256 new tokens (half the context for small models) rather than
        # stopping at transformers' model-agnostic max_length of 20 with a warning.
        self.generation_config.max_new_tokens = min(256, config.context_length // 2)
        self.generation_config._from_model_config = False

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @accepts_past_key_values
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits of shape (batch, seq_len, vocab_size) (only the last `logits_to_keep` positions if set);
        `labels` (batch, seq_len), with -100 for ignored positions, give the shifted next-token loss."""
        if not torch.compiler.is_compiling():
            _check_head_inputs(self.config, input_ids if input_ids is not None else inputs_embeds, labels,
                               logits_to_keep)
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        loss = logits = None
        if labels is not None and self.training and type(self.lm_head) in (nn.Linear, Linear) and \
                type(self.lm_head.weight.data) is torch.Tensor:  # not a DTensor: TP and FSDP take the plain path
            # Training: the loss without the full logits (see LMHeadLoss); outputs.logits is None.
            loss = lm_head_loss(hidden_states, self.lm_head.weight, labels.to(hidden_states.device),
                                kwargs.get("num_items_in_batch"))
        else:
            logits = self.lm_head(hidden_states)  # (B, T, C) -> (B, T, vocab_size)
            if labels is not None:
                loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)

        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    # generate()'s edge, three of GenerationMixin's steps: the length arguments (and which of them wins), the prompt,
    # then whether prompt + new tokens fit the context, all before any work.
    def _prepare_generation_config(self, generation_config, **kwargs):
        for name, least in (("max_new_tokens", 1), ("max_length", 1), ("min_new_tokens", 0), ("min_length", 0)):
            for value in (kwargs.get(name), getattr(generation_config, name, None)):
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                    raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if generation_config is not None:  # the caller's config and arguments, merged as transformers merges them
            generation_config = copy.deepcopy(generation_config)
            kwargs = generation_config.update(**kwargs)
        given = generation_config.to_dict() if generation_config is not None else kwargs
        config, model_kwargs = super()._prepare_generation_config(generation_config, **kwargs)
        # Our max_new_tokens is a default (see __init__): a caller's max_length wins over it, as it does over
        # transformers' default length, where transformers would let any max_new_tokens win.
        if given.get("max_length") is not None and given.get("max_new_tokens") in (
                None, self.generation_config.max_new_tokens):
            config.max_new_tokens = None
        return config, model_kwargs

    def _prepare_model_inputs(self, inputs=None, bos_token_id=None, model_kwargs=None):
        inputs_tensor, input_name, model_kwargs = super()._prepare_model_inputs(inputs, bos_token_id, model_kwargs)
        if input_name == "input_ids" and (not isinstance(inputs_tensor, torch.Tensor) or inputs_tensor.ndim != 2
                                          or inputs_tensor.shape[1] == 0):
            shape = tuple(inputs_tensor.shape) if isinstance(inputs_tensor, torch.Tensor) else type(inputs_tensor)
            raise ValueError(f"generate() takes the prompt as token ids of shape (batch, prompt_len), at least one "
                             f"token each, got {shape}; one prompt's ids are ids.unsqueeze(0)")
        return inputs_tensor, input_name, model_kwargs

    def _validate_generated_length(self, generation_config, input_ids_length, has_default_max_length):
        # Fail before any work when prompt + new tokens cannot fit the position embedding table.
        super()._validate_generated_length(generation_config, input_ids_length, has_default_max_length)
        if generation_config.max_length > self.config.context_length:
            raise ValueError(
                f"prompt ({input_ids_length} tokens) + new tokens would reach {generation_config.max_length} "
                f"tokens, longer than the context length {self.config.context_length}; lower max_new_tokens "
                f"to at most {self.config.context_length - input_ids_length}"
            )


class GPTScratchForSequenceClassification(GPTScratchPreTrainedModel):
    """The base model plus a linear `score` head over `num_labels` classes, read at each text's last token.

    The book's chapter 6 fine-tunes its GPT into a spam classifier this way: under causal attention only the last
    token has seen the whole text. As `GPT2ForSequenceClassification`: the last token is the rightmost one that is not
    `pad_token_id`, and `config.problem_type` picks the loss. Unlike it, positions are counted from the attention mask
    when none are given, so a left-padded text (our tokenizer pads on the left) scores as it does alone.
    """

    _auto_class = "AutoModelForSequenceClassification"  # save_pretrained copies the code files beside the weights

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = GPTScratchModel(config)
        self.score = nn.Linear(config.emb_dim, config.num_labels, bias=False)
        self.post_init()

    @accepts_past_key_values
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """Logits of shape (batch, num_labels). `labels` give the loss: (batch,) class ids (cross-entropy),
        (batch, num_labels) floats (multi-label, binary cross-entropy), or (batch,) values with one label (regression).

        Raises ValueError for a batch of several texts when the config has no `pad_token_id`."""
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2 and cache is None:
            # Left padding would move each text along the position embeddings by its padding: count positions from the
            # mask instead, as generate() does, so the padding side and the batch change nothing.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)  # (B, T, C) -> (B, T, num_labels)
        batch = logits.shape[0]
        if self.config.pad_token_id is None and batch != 1:
            raise ValueError(f"cannot find the last token of {batch} padded texts: the config has no pad_token_id")
        if self.config.pad_token_id is not None and input_ids is not None:
            # The rightmost token that is not padding, as GPT-2 finds it: right for left and right padding alike (a
            # text ending in the pad token itself, <|endoftext|> for GPT-2, is read at the token before it).
            not_pad = (input_ids != self.config.pad_token_id).to(logits.device, torch.int32)
            positions = torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32)
            last_token = (positions * not_pad).argmax(-1)  # (B,)
        else:
            last_token = -1
            if self.config.pad_token_id is not None:
                logger.warning_once("padding cannot be told apart in inputs_embeds: each row is read at its last token")
        pooled_logits = logits[torch.arange(batch, device=logits.device), last_token]  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=pooled_logits, config=self.config)

        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled_logits,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "GPTScratchPreTrainedModel", "GPTScratchModel", "GPTScratchForCausalLM", "GPTScratchForSequenceClassification",
]
