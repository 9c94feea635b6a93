"""The state-dict maps: exact round trips and errors that name the key."""

import pytest
import torch
from conftest import hf_pair, tiny_config
from transformers import GPT2Config, GPT2LMHeadModel

from gpt_scratch.convert import (
    config_from_book,
    config_from_hf_gpt2,
    config_to_hf_gpt2,
    from_book,
    from_hf_gpt2,
    to_book,
    to_hf_gpt2,
)


def _hf_state_dict():
    hf, _ = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True))
    return hf.state_dict()


def test_gpt2_ours_gpt2_round_trip_is_bit_identical():
    sd = _hf_state_dict()
    back = to_hf_gpt2(from_hf_gpt2(sd))
    assert back.keys() == sd.keys()
    for key in sd:
        assert torch.equal(back[key], sd[key]), key


def test_accepts_gpt2model_keys_without_prefix_old_buffers_and_missing_tied_head():
    sd = _hf_state_dict()
    bare = {k.removeprefix("transformer."): v for k, v in sd.items() if k != "lm_head.weight"}
    bare["h.0.attn.bias"] = torch.ones(1, 1, 64, 64)  # causal-mask buffer of older checkpoints
    bare["h.1.attn.masked_bias"] = torch.tensor(-1e4)
    ours = from_hf_gpt2(bare)
    assert ours.keys() == from_hf_gpt2(sd).keys()
    assert torch.equal(ours["lm_head.weight"], sd["transformer.wte.weight"])


def test_qkv_split_is_the_fused_tensors_thirds():
    sd = _hf_state_dict()
    ours = from_hf_gpt2(sd)
    fused = sd["transformer.h.1.attn.c_attn.weight"]  # Conv1D layout (in, 3 * out)
    c = fused.shape[0]
    assert torch.equal(ours["model.trf_blocks.1.att.W_key.weight"], fused[:, c:2 * c].t())
    assert torch.equal(ours["model.trf_blocks.1.att.W_value.bias"], sd["transformer.h.1.attn.c_attn.bias"][2 * c:])


def test_missing_and_unexpected_keys_are_listed():
    sd = _hf_state_dict()
    del sd["transformer.h.1.mlp.c_fc.bias"]
    sd["transformer.h.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        from_hf_gpt2(sd)
    assert "missing keys: ['transformer.h.1.mlp.c_fc.bias']" in str(err.value)
    assert "unexpected keys: ['transformer.h.0.extra.weight']" in str(err.value)


def test_shape_mismatch_names_key_expected_and_found():
    sd = _hf_state_dict()
    sd["transformer.h.0.attn.c_proj.weight"] = torch.zeros(32, 16)
    with pytest.raises(ValueError, match=r"transformer\.h\.0\.attn\.c_proj\.weight: expected shape \(32, 32\), "
                                         r"found \(32, 16\)"):
        from_hf_gpt2(sd)
    ours = from_hf_gpt2(_hf_state_dict())
    ours["model.trf_blocks.1.ff.layers.expand.weight"] = torch.zeros(64, 32)
    with pytest.raises(ValueError, match=r"ff\.layers\.expand\.weight: expected shape \(128, 32\), found \(64, 32\)"):
        to_hf_gpt2(ours)


def test_gap_in_block_indices_is_refused():
    sd = {k: v for k, v in _hf_state_dict().items() if ".h.0." not in k}
    with pytest.raises(ValueError, match=r"block\(s\) \[0\]"):
        from_hf_gpt2(sd)


def test_not_a_gpt2_state_dict():
    with pytest.raises(ValueError, match="missing key 'transformer.wte.weight'"):
        from_hf_gpt2({"foo": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing key 'tok_emb.weight'"):
        from_book(_hf_state_dict())


def test_model_without_qkv_bias_exports_zero_biases():
    _, ours = hf_pair(tiny_config(qkv_bias=False))
    hf_sd = to_hf_gpt2(ours.state_dict())
    assert torch.count_nonzero(hf_sd["transformer.h.0.attn.c_attn.bias"]) == 0
    hf = GPT2LMHeadModel(config_to_hf_gpt2(ours.config)).eval()
    hf.load_state_dict(hf_sd, strict=True)


def test_config_round_trip_with_transformers():
    config = tiny_config(qkv_bias=True, tie_word_embeddings=True, drop_rate=0.1)
    back = config_from_hf_gpt2(config_to_hf_gpt2(config))
    assert back.to_dict() == config.to_dict()
    assert config_from_hf_gpt2(GPT2Config().to_dict()).to_dict() == config_from_hf_gpt2(GPT2Config()).to_dict()
    assert config_from_hf_gpt2(GPT2Config()).pad_token_id == 50256


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(add_cross_attention=True), "add_cross_attention=True"),
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
        (dict(activation_function="relu"), "activation_function='relu'"),
        (dict(n_inner=100), "n_inner=100"),
        (dict(attn_pdrop=0.2), "different dropout rates"),
    ],
)
def test_unsupported_gpt2_variants_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        config_from_hf_gpt2(GPT2Config(**kwargs))


def test_book_config_and_tied_export():
    config = config_from_book({"vocab_size": 50257, "context_length": 64, "emb_dim": 32, "n_heads": 4,
                               "n_layers": 2, "dropout": 0.0, "qkv_bias": True})
    assert config.tie_word_embeddings is False and config.drop_rate == 0.0
    with pytest.raises(ValueError, match="unknown keys in the book's config: \\['n_embd'\\]"):
        config_from_book({"n_embd": 32})
    _, tied = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True))
    book_sd = to_book(tied.state_dict())
    assert torch.equal(book_sd["out_head.weight"], book_sd["tok_emb.weight"])
    assert book_sd["trf_blocks.0.att.mask"].shape == (64, 64)


def test_gpt2_configs_with_a_small_vocabulary_convert(caplog):
    # GPT2Config keeps bos/eos at 50256 whatever the vocabulary; GPT2LMHeadModel accepts that, so must we.
    with caplog.at_level("WARNING", logger="gpt_scratch.convert"):
        config = config_from_hf_gpt2(GPT2Config(vocab_size=1000, n_layer=1, n_embd=32, n_head=4))
    assert (config.vocab_size, config.bos_token_id, config.eos_token_id, config.pad_token_id) == (
        1000, None, None, None)
    assert "bos_token_id=50256, eos_token_id=50256" in caplog.text and "vocabulary of 1000 tokens" in caplog.text
    kept = config_from_hf_gpt2(GPT2Config(vocab_size=1000, bos_token_id=1, eos_token_id=2))
    assert (kept.bos_token_id, kept.eos_token_id, kept.pad_token_id) == (1, 2, 2)
