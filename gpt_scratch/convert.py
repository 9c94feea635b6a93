"""Weight conversion as data: transformers' GPT-2 <-> ours <-> the book's `GPTModel`.

Each checkpoint format is one table of `Rule`s (our key template <-> their key template, plus whether
the tensor is transposed or is one part of a fused query|key|value tensor), applied in either
direction by `_convert`. Every source key must be used and every tensor must have the shape the
model's dimensions imply; errors name the key.

All functions are pure: state dict in, state dict out (tensors are shared, not copied, wherever no
transpose/split/concatenation is needed). Each conversion is planned from the tensors' shapes alone (a
list of `Step`s, one per output tensor, with every key and shape checked) and then carried out by `make`;
`gpt_scratch.checkpoint` runs the same plans over files, one tensor at a time.
"""

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from .configuration_gpt_scratch import GPTScratchConfig

StateDict = dict[str, torch.Tensor]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """One tensor: `ours` <-> `theirs`, `{i}` standing for the block index.

    transpose: they store (in, out), as GPT-2's `Conv1D` does; `nn.Linear` stores (out, in).
    part: this tensor is part `part` of their fused query|key|value tensor, split along the output dim.
    optional: the tensor may be absent (query/key/value biases when `qkv_bias=False`).
    """

    ours: str
    theirs: str
    transpose: bool = False
    part: int | None = None
    optional: bool = False


_BLOCK = "model.trf_blocks.{i}"
_H = "transformer.h.{i}"

HF_GPT2_RULES: tuple[Rule, ...] = (
    Rule("model.tok_emb.weight", "transformer.wte.weight"),
    Rule("model.pos_emb.weight", "transformer.wpe.weight"),
    Rule(f"{_BLOCK}.norm1.scale", f"{_H}.ln_1.weight"),
    Rule(f"{_BLOCK}.norm1.shift", f"{_H}.ln_1.bias"),
    Rule(f"{_BLOCK}.att.W_query.weight", f"{_H}.attn.c_attn.weight", transpose=True, part=0),
    Rule(f"{_BLOCK}.att.W_key.weight", f"{_H}.attn.c_attn.weight", transpose=True, part=1),
    Rule(f"{_BLOCK}.att.W_value.weight", f"{_H}.attn.c_attn.weight", transpose=True, part=2),
    Rule(f"{_BLOCK}.att.W_query.bias", f"{_H}.attn.c_attn.bias", part=0, optional=True),
    Rule(f"{_BLOCK}.att.W_key.bias", f"{_H}.attn.c_attn.bias", part=1, optional=True),
    Rule(f"{_BLOCK}.att.W_value.bias", f"{_H}.attn.c_attn.bias", part=2, optional=True),
    Rule(f"{_BLOCK}.att.out_proj.weight", f"{_H}.attn.c_proj.weight", transpose=True),
    Rule(f"{_BLOCK}.att.out_proj.bias", f"{_H}.attn.c_proj.bias"),
    Rule(f"{_BLOCK}.norm2.scale", f"{_H}.ln_2.weight"),
    Rule(f"{_BLOCK}.norm2.shift", f"{_H}.ln_2.bias"),
    Rule(f"{_BLOCK}.ff.layers.expand.weight", f"{_H}.mlp.c_fc.weight", transpose=True),
    Rule(f"{_BLOCK}.ff.layers.expand.bias", f"{_H}.mlp.c_fc.bias"),
    Rule(f"{_BLOCK}.ff.layers.project.weight", f"{_H}.mlp.c_proj.weight", transpose=True),
    Rule(f"{_BLOCK}.ff.layers.project.bias", f"{_H}.mlp.c_proj.bias"),
    Rule("model.final_norm.scale", "transformer.ln_f.weight"),
    Rule("model.final_norm.shift", "transformer.ln_f.bias"),
    Rule("lm_head.weight", "lm_head.weight"),
)

# GPT2ForSequenceClassification: the same body, and a `score` head of shape (num_labels, C), without bias, where
# GPT2LMHeadModel has `lm_head`; it is GPTScratchForSequenceClassification's `score`. A state dict holding
# `score.weight` is converted with this table.
HF_GPT2_CLASSIFIER_RULES: tuple[Rule, ...] = HF_GPT2_RULES[:-1] + (Rule("score.weight", "score.weight"),)


def _hf_gpt2_rules(keys: Sequence[str]) -> tuple[Rule, ...]:
    return HF_GPT2_CLASSIFIER_RULES if "score.weight" in keys else HF_GPT2_RULES

# The book's GPTModel uses our module names without the `model.` prefix, indexes the feed-forward's Sequential
# (`ff.layers.0`, `ff.layers.2`) where ours names its Linear layers, and calls the head `out_head`.
_BOOK_NAMES = {"lm_head.weight": "out_head.weight", ".ff.layers.expand.": ".ff.layers.0.", ".ff.layers.project.":
               ".ff.layers.2."}


def _book_key(ours: str) -> str:
    key = ours.removeprefix("model.")
    for name, book_name in _BOOK_NAMES.items():
        key = key.replace(name, book_name)
    return key


BOOK_RULES: tuple[Rule, ...] = tuple(Rule(r.ours, _book_key(r.ours), optional=r.optional) for r in HF_GPT2_RULES)

# llama.cpp's GGUF names for its `gpt2` architecture (gguf-py's TENSOR_NAMES; what convert_hf_to_gguf.py makes of a
# GPT-2 folder). GGUF keeps PyTorch's (out, in) layout, so nothing is transposed; the query, key and value are fused
# as in GPT-2 (`attn_qkv`, rows q|k|v). A tied head has no `output.weight`: llama.cpp then reuses `token_embd`.
_GGUF_NAMES = {
    "transformer.wte.": "token_embd.", "transformer.wpe.": "position_embd.", "transformer.h.{i}.": "blk.{i}.",
    "ln_1.": "attn_norm.", "attn.c_attn.": "attn_qkv.", "attn.c_proj.": "attn_output.", "ln_2.": "ffn_norm.",
    "mlp.c_fc.": "ffn_up.", "mlp.c_proj.": "ffn_down.", "transformer.ln_f.": "output_norm.", "lm_head.": "output.",
}


def _gguf_key(gpt2_key: str) -> str:
    for name, gguf_name in _GGUF_NAMES.items():
        gpt2_key = gpt2_key.replace(name, gguf_name)
    return gpt2_key


GGUF_RULES: tuple[Rule, ...] = tuple(replace(r, theirs=_gguf_key(r.theirs), transpose=False) for r in HF_GPT2_RULES)

# Buffers that carry no weights: GPT-2's old causal-mask buffers, the book's `att.mask`.
_HF_IGNORED = re.compile(r"^transformer\.h\.\d+\.attn\.(bias|masked_bias)$")
_BOOK_MASK = re.compile(r"^trf_blocks\.\d+\.att\.mask$")


def _expected_shape(ours_key: str, vocab: int, positions: int, channels: int, labels: int) -> tuple[int, ...]:
    """The shape of one of our tensors, from the model's dimensions."""
    suffix = re.sub(r"^model\.trf_blocks\.\d+\.", "", ours_key)
    shapes = {
        "model.tok_emb.weight": (vocab, channels),
        "model.pos_emb.weight": (positions, channels),
        "lm_head.weight": (vocab, channels),
        "score.weight": (labels, channels),
        "ff.layers.expand.weight": (4 * channels, channels),
        "ff.layers.expand.bias": (4 * channels,),
        "ff.layers.project.weight": (channels, 4 * channels),
    }
    if suffix in shapes:
        return shapes[suffix]
    if suffix.endswith(".weight") and "norm" not in suffix:
        return (channels, channels)
    return (channels,)


def _their_shape(rule: Rule, ours_shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = list(ours_shape)
    if rule.part is not None:
        shape[0] *= 3
    return tuple(reversed(shape)) if rule.transpose else tuple(shape)


def _expand(rules: tuple[Rule, ...], n_layers: int) -> list[Rule]:
    expanded = []
    for rule in rules:
        if "{i}" in rule.ours:
            expanded += [Rule(rule.ours.format(i=i), rule.theirs.format(i=i), rule.transpose, rule.part,
                              rule.optional) for i in range(n_layers)]
        else:
            expanded.append(rule)
    return expanded


def _n_layers(keys: list[str], pattern: str) -> int:
    indices = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if indices and indices != set(range(max(indices) + 1)):
        missing = sorted(set(range(max(indices) + 1)) - indices)
        raise ValueError(f"state dict has blocks up to {max(indices)} but none for block(s) {missing}")
    return len(indices)


Shapes = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class Step:
    """How one output tensor is made: read `sources`, then apply `rule` (see `make`).

    to_ours: their tensor -> ours (transpose, then take part `rule.part` of the fused query|key|value);
        otherwise ours -> theirs (concatenate the query, key and value parts, then transpose).
    sources: the input keys read; for a fused output the query, key and value parts in that order, `None`
        standing for a part that is all zeros (GPT-2's biases for a model without them).
    """

    key: str
    rule: Rule
    sources: tuple[str | None, ...]
    shape: tuple[int, ...]
    to_ours: bool


def make(step: Step, get: Callable[[str], torch.Tensor], zeros_like: torch.Tensor | None = None) -> torch.Tensor:
    """Carry out one `Step`, reading its inputs with `get`; zero parts take `zeros_like`'s dtype and device.

    The result shares memory with its input when no transpose/split/concatenation is needed.
    """
    rule = step.rule
    if step.to_ours:
        tensor = get(step.sources[0])
        if rule.transpose:
            tensor = tensor.t()
        if rule.part is not None:
            tensor = tensor.chunk(3, dim=0)[rule.part]
        return tensor.contiguous() if (rule.transpose or rule.part is not None) else tensor
    ours_shape = tuple(reversed(step.shape)) if rule.transpose else step.shape
    part_shape = (ours_shape[0] // 3, *ours_shape[1:])
    parts = [get(s) if s is not None else zeros_like.new_zeros(part_shape) for s in step.sources]
    tensor = torch.cat(parts, dim=0) if rule.part is not None else parts[0]
    return tensor.t().contiguous() if rule.transpose else tensor


def _dims(shapes: Shapes, emb_key: str, pos_key: str) -> tuple[int, int, int, int]:
    """(vocab, positions, channels, labels): labels is the classification head's size (`score.weight`), or 0."""
    for key in (emb_key, pos_key):
        if key not in shapes:
            raise ValueError(f"missing key {key!r}: not a state dict of this format")
        if len(shapes[key]) != 2:
            raise ValueError(f"{key}: expected a 2-D tensor, found shape {tuple(shapes[key])}")
    vocab, channels = shapes[emb_key]
    labels = tuple(shapes["score.weight"])[0] if len(shapes.get("score.weight", ())) == 2 else 0
    return vocab, shapes[pos_key][0], channels, labels


def _check_keys(found: set[str], expected: set[str], optional: set[str], fmt: str) -> None:
    missing = sorted(expected - optional - found)
    unexpected = sorted(found - expected)
    if missing or unexpected:
        parts = [f"missing keys: {missing}" if missing else "", f"unexpected keys: {unexpected}" if unexpected else ""]
        raise ValueError(f"{fmt} state dict does not match: " + "; ".join(p for p in parts if p))


def _check_shape(key: str, shape: Sequence[int], expected: tuple[int, ...]) -> None:
    if tuple(shape) != expected:
        raise ValueError(f"{key}: expected shape {expected}, found {tuple(shape)}")


def _plan_to_ours(shapes: Shapes, rules: list[Rule], dims: tuple[int, int, int], fmt: str) -> list[Step]:
    """Their keys -> our tensors, checking every key and shape."""
    _check_keys(set(shapes), {r.theirs for r in rules}, {r.theirs for r in rules if r.optional}, fmt)
    steps = []
    for rule in rules:
        if rule.theirs not in shapes:
            continue
        ours_shape = _expected_shape(rule.ours, *dims)
        _check_shape(rule.theirs, shapes[rule.theirs], _their_shape(rule, ours_shape))
        steps.append(Step(rule.ours, rule, (rule.theirs,), ours_shape, to_ours=True))
    return steps


def _plan_from_ours(shapes: Shapes, rules: list[Rule], dims: tuple[int, int, int],
                    zeros: frozenset[str] = frozenset()) -> list[Step]:
    """Our keys -> their tensors, checking every key and shape; fused tensors gather their three parts.

    `zeros`: keys of `shapes` that stand for all-zero tensors (read as `None` sources).
    """
    _check_keys(set(shapes), {r.ours for r in rules}, {r.ours for r in rules if r.optional}, "gpt_scratch")
    parts: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.ours not in shapes:
            continue
        _check_shape(rule.ours, shapes[rule.ours], _expected_shape(rule.ours, *dims))
        parts.setdefault(rule.theirs, []).append(rule)
    steps = []
    for theirs, pieces in parts.items():
        rule = pieces[0]
        if rule.part is not None and len(pieces) != 3:
            names = sorted(r.ours for r in pieces)
            raise ValueError(f"{theirs} needs query, key and value tensors; found only {names}")
        pieces = sorted(pieces, key=lambda r: r.part or 0)
        sources = tuple(None if r.ours in zeros else r.ours for r in pieces)
        steps.append(Step(theirs, rule, sources, _their_shape(rule, _expected_shape(rule.ours, *dims)), to_ours=False))
    return steps


def _apply(steps: list[Step], sd: Mapping[str, torch.Tensor], zeros_like: torch.Tensor | None = None) -> StateDict:
    return {step.key: make(step, sd.__getitem__, zeros_like) for step in steps}


def _shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The shapes of a state dict, after checking it is one (every public map starts here)."""
    if not isinstance(sd, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors (model.state_dict()), got "
                        f"{type(sd).__name__}")
    not_tensors = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise TypeError(f"state_dict must map names to tensors; {not_tensors[:3]!r} do not "
                        f"({type(sd[not_tensors[0]]).__name__})")
    return {k: tuple(v.shape) for k, v in sd.items()}


# ----- transformers GPT-2 (GPT2LMHeadModel) --------------------------------------------------------


def plan_from_hf_gpt2(shapes: Shapes) -> list[Step]:
    """Plan a `GPT2LMHeadModel`/`GPT2Model` state dict (keys with or without `transformer.`) -> ours, from
    the tensors' shapes; the steps' sources are the keys as given. A missing `lm_head.weight` means the head
    is tied: it is read from the token embedding. A `GPT2ForSequenceClassification` state dict (`score.weight`)
    plans `GPTScratchForSequenceClassification`'s.

    Raises:
        ValueError: missing or unexpected keys (listed), or a tensor whose shape does not fit the model's
            dimensions (key, expected, found).
    """
    given = {k if k.startswith(("transformer.", "lm_head.", "score.")) else f"transformer.{k}": k for k in shapes}
    given = {k: v for k, v in given.items() if not _HF_IGNORED.match(k)}
    rules = _hf_gpt2_rules(list(given))
    if rules is HF_GPT2_RULES and "lm_head.weight" not in given and "transformer.wte.weight" in given:
        given["lm_head.weight"] = given["transformer.wte.weight"]
    named = {k: tuple(shapes[v]) for k, v in given.items()}
    dims = _dims(named, "transformer.wte.weight", "transformer.wpe.weight")
    n_layers = _n_layers(list(named), r"^transformer\.h\.(\d+)\.")
    steps = _plan_to_ours(named, _expand(rules, n_layers), dims, "GPT-2")
    return [replace(s, sources=tuple(given[k] for k in s.sources)) for s in steps]


def plan_to_hf_gpt2(shapes: Shapes) -> list[Step]:
    """Plan our state dict -> a `GPT2LMHeadModel` state dict (or, from a classifier's, a
    `GPT2ForSequenceClassification` one), from the tensors' shapes.

    GPT-2 always has query/key/value biases: those of a model without them (`qkv_bias=False`) are planned
    as zeros (`None` sources), which compute the same thing.
    """
    return _plan_to_fused(shapes, _hf_gpt2_rules(list(shapes)))


def plan_to_gguf(shapes: Shapes) -> list[Step]:
    """Plan our causal LM's state dict -> llama.cpp's `gpt2` tensors (`GGUF_RULES`), from the tensors' shapes; as
    `plan_to_hf_gpt2`, with zeros for missing query/key/value biases. Keys are GGUF's (`blk.0.attn_qkv.weight`, ...).
    """
    return _plan_to_fused(shapes, GGUF_RULES)


def _plan_to_fused(shapes: Shapes, rules: tuple[Rule, ...]) -> list[Step]:
    """Our state dict -> a format that fuses query|key|value (GPT-2's, GGUF's), absent biases planned as zeros."""
    named = {k: tuple(v) for k, v in shapes.items()}
    dims = _dims(named, "model.tok_emb.weight", "model.pos_emb.weight")
    n_layers = _n_layers(list(named), r"^model\.trf_blocks\.(\d+)\.")
    zeros = set()
    for i in range(n_layers):
        for name in ("W_query", "W_key", "W_value"):
            key = f"model.trf_blocks.{i}.att.{name}.bias"
            if key not in named:
                named[key] = (dims[2],)
                zeros.add(key)
    return _plan_from_ours(named, _expand(rules, n_layers), dims, frozenset(zeros))


def from_hf_gpt2(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """A `GPT2LMHeadModel`/`GPT2Model` state dict (keys with or without `transformer.`) -> ours;
    a `GPT2ForSequenceClassification` one (with `score.weight`) -> `GPTScratchForSequenceClassification`'s.

    A missing `lm_head.weight` means the head is tied: it is set to the token embedding.

    Raises:
        ValueError: missing or unexpected keys (listed), or a tensor whose shape does not fit the model's
            dimensions (key, expected, found).
    """
    return _apply(plan_from_hf_gpt2(_shapes(sd)), sd)


def to_hf_gpt2(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Our state dict -> a `GPT2LMHeadModel` state dict.

    GPT-2 always has query/key/value biases: a model without them (`qkv_bias=False`) gets zeros, which
    compute the same thing. Pair with `config_to_hf_gpt2(config)` for the config.
    """
    steps = plan_to_hf_gpt2(_shapes(sd))
    return _apply(steps, sd, zeros_like=sd["model.tok_emb.weight"])


def config_from_hf_gpt2(gpt2_config: Any) -> GPTScratchConfig:
    """A transformers `GPT2Config` (or its dict) -> our config.

    GPT-2 has three dropout rates (embeddings, attention, residual); the book's model has one, so
    `resid_pdrop` is used and the others must agree with it.

    Raises:
        ValueError: a GPT-2 variant this architecture does not implement (cross-attention, another
            activation, a feed-forward width other than 4x, attention scaled by layer index, ...).
    """
    if not hasattr(gpt2_config, "to_dict") and not isinstance(gpt2_config, Mapping):
        raise TypeError(f"gpt2_config must be a transformers GPT2Config or its dict, got {type(gpt2_config).__name__}")
    c = gpt2_config.to_dict() if hasattr(gpt2_config, "to_dict") else dict(gpt2_config)
    n_embd = c.get("n_embd", 768)
    unsupported = {
        "add_cross_attention": (c.get("add_cross_attention", False), False),
        "scale_attn_by_inverse_layer_idx": (c.get("scale_attn_by_inverse_layer_idx", False), False),
        "scale_attn_weights": (c.get("scale_attn_weights", True), True),
    }
    for name, (value, wanted) in unsupported.items():
        if value != wanted:
            raise ValueError(f"GPT-2 config has {name}={value}; only {name}={wanted} is supported")
    if c.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(
            f"GPT-2 config has activation_function={c['activation_function']!r}; only the tanh GELU "
            f"('gelu_new' or 'gelu_pytorch_tanh') is supported"
        )
    if c.get("n_inner") not in (None, 4 * n_embd):
        raise ValueError(
            f"GPT-2 config has n_inner={c['n_inner']}; only None or 4 * n_embd ({4 * n_embd}) is supported"
        )
    rates = {name: c.get(name, 0.1) for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(rates.values())) > 1:
        raise ValueError(f"GPT-2 config has different dropout rates {rates}; this model has one drop_rate")
    vocab_size = c.get("vocab_size", 50257)
    # GPT2Config keeps bos/eos at 50256 whatever the vocabulary, so `GPT2Config(vocab_size=1000)` has ids that
    # no token can have: GPT2LMHeadModel never looks them up, but our config checks them, so they become None.
    ids = {name: c.get(name, 50256) for name in ("bos_token_id", "eos_token_id", "pad_token_id")}
    ids["pad_token_id"] = ids["pad_token_id"] if ids["pad_token_id"] is not None else ids["eos_token_id"]
    outside = {name: value for name, value in ids.items()
               if isinstance(value, int) and not 0 <= value < vocab_size}
    if outside:
        logger.warning("GPT-2 config has %s outside its vocabulary of %d tokens; they become None",
                       ", ".join(f"{name}={value}" for name, value in outside.items()), vocab_size)
    ids |= dict.fromkeys(outside)
    return GPTScratchConfig(
        vocab_size=vocab_size,
        context_length=c.get("n_positions", 1024),
        emb_dim=n_embd,
        n_heads=c.get("n_head", 12),
        n_layers=c.get("n_layer", 12),
        drop_rate=float(rates["resid_pdrop"]),
        qkv_bias=True,
        layer_norm_eps=c.get("layer_norm_epsilon", 1e-5),
        initializer_range=c.get("initializer_range", 0.02),
        tie_word_embeddings=c.get("tie_word_embeddings", True),
        **ids,
    )


def config_to_hf_gpt2(config: GPTScratchConfig) -> Any:
    """Our config -> a transformers `GPT2Config` describing the same network."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.emb_dim,
        n_head=config.n_heads,
        n_layer=config.n_layers,
        resid_pdrop=config.drop_rate,
        embd_pdrop=config.drop_rate,
        attn_pdrop=config.drop_rate,
        layer_norm_epsilon=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        activation_function="gelu_new",
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


# ----- the book's GPTModel ----------------------------------------------------------------------------


def plan_from_book(shapes: Shapes) -> list[Step]:
    """Plan a state dict of the book's `GPTModel` -> ours, from the tensors' shapes (`att.mask` buffers are
    dropped).

    Raises:
        ValueError: missing or unexpected keys (listed), or a shape that does not fit (key, expected, found).
    """
    named = {k: tuple(v) for k, v in shapes.items() if not _BOOK_MASK.match(k)}
    dims = _dims(named, "tok_emb.weight", "pos_emb.weight")
    n_layers = _n_layers(list(named), r"^trf_blocks\.(\d+)\.")
    return _plan_to_ours(named, _expand(BOOK_RULES, n_layers), dims, "book GPTModel")


def from_book(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """A state dict of the book's `GPTModel` -> ours (its `att.mask` buffers are dropped).

    Raises:
        ValueError: missing or unexpected keys (listed), or a shape that does not fit (key, expected, found).
    """
    return _apply(plan_from_book(_shapes(sd)), sd)


def to_book(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Our state dict -> the book's `GPTModel` (with its causal-mask buffers, so `strict=True` loads work).

    The book's model never ties its head, so a tied model's `out_head.weight` is the token embedding.
    """
    shapes = _shapes(sd)
    dims = _dims(shapes, "model.tok_emb.weight", "model.pos_emb.weight")
    n_layers = _n_layers(list(shapes), r"^model\.trf_blocks\.(\d+)\.")
    out = _apply(_plan_from_ours(shapes, _expand(BOOK_RULES, n_layers), dims), sd)
    positions = dims[1]
    mask = torch.triu(torch.ones(positions, positions), diagonal=1)
    for i in range(n_layers):
        out[f"trf_blocks.{i}.att.mask"] = mask
    return out


def config_from_book(cfg: Mapping[str, Any]) -> GPTScratchConfig:
    """The book's config dict (e.g. `GPT_CONFIG_124M`, with `drop_rate` or `dropout`) -> our config."""
    if not isinstance(cfg, Mapping):
        raise TypeError(f"the book's config must be a dict such as GPT_CONFIG_124M, got {type(cfg).__name__}")
    known = {"vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "dropout", "qkv_bias"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown keys in the book's config: {unknown}; expected some of {sorted(known)}")
    return GPTScratchConfig(**cfg, tie_word_embeddings=False)


def config_to_book(config: GPTScratchConfig) -> dict[str, Any]:
    """Our config -> the book's config dict."""
    return {
        "vocab_size": config.vocab_size,
        "context_length": config.context_length,
        "emb_dim": config.emb_dim,
        "n_heads": config.n_heads,
        "n_layers": config.n_layers,
        "drop_rate": config.drop_rate,
        "qkv_bias": config.qkv_bias,
    }


__all__ = [
    "Rule", "HF_GPT2_RULES", "HF_GPT2_CLASSIFIER_RULES", "BOOK_RULES", "GGUF_RULES", "Step", "make",
    "plan_from_hf_gpt2", "plan_to_hf_gpt2", "plan_to_gguf", "plan_from_book",
    "from_hf_gpt2", "to_hf_gpt2", "config_from_hf_gpt2", "config_to_hf_gpt2", "from_book", "to_book",
    "config_from_book", "config_to_book",
]
