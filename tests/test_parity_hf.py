"""Parity with transformers' own GPT2LMHeadModel holding the same weights: the backbone of the suite.

Logits, hidden states, attentions and loss here; every decoding mode in test_generation_parity.py.
"""

import pytest
import torch
from conftest import hf_pair, tiny_config
from torch.testing import assert_close

ATTN = ["eager", "sdpa"]
# Tied (GPT-2 as released) and untied-without-qkv-bias (the book's default) variants.
VARIANTS = {
    "gpt2-like": dict(qkv_bias=True, tie_word_embeddings=True),
    "book-like": dict(qkv_bias=False, tie_word_embeddings=False),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("attn", ATTN)
def test_logits_match(attn, variant):
    hf, ours = hf_pair(tiny_config(**VARIANTS[variant]), attn)
    input_ids = torch.randint(0, 50257, (3, 40))
    with torch.no_grad():
        assert_close(ours(input_ids).logits, hf(input_ids).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("attn", ATTN)
def test_hidden_states_attentions_and_loss_match(attn):
    hf, ours = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True), attn)
    input_ids = torch.randint(0, 50257, (2, 12))
    kwargs = dict(labels=input_ids, output_hidden_states=True, output_attentions=attn == "eager")
    with torch.no_grad():
        a, b = ours(input_ids, **kwargs), hf(input_ids, **kwargs)
    assert_close(a.loss, b.loss, atol=1e-5, rtol=0)
    assert len(a.hidden_states) == len(b.hidden_states) == 3
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert_close(x, y, atol=1e-5, rtol=0)
    if attn == "eager":
        assert len(a.attentions) == 2
        for x, y in zip(a.attentions, b.attentions):
            assert_close(x, y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_loss_and_gradients_match_without_the_full_logits(variant):
    # In training with labels the head's loss is computed chunk by chunk (LMHeadLoss): the same loss and gradients as
    # GPT-2's logits + cross-entropy, with ignored labels, Trainer's num_items_in_batch, and chunks that do not divide
    # the tokens; no logits are returned.
    from gpt_scratch.modeling_gpt_scratch import lm_head_loss

    hf, ours = hf_pair(tiny_config(**VARIANTS[variant]), "sdpa")
    hf.train(), ours.train()
    input_ids = torch.randint(0, 50257, (3, 40))
    labels = input_ids.clone()
    labels[0, :7] = -100
    for kwargs in ({}, {"num_items_in_batch": torch.tensor(100)}):
        a, b = ours(input_ids, labels=labels, **kwargs), hf(input_ids, labels=labels, **kwargs)
        assert a.logits is None
        assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-6)
        ours.zero_grad(), hf.zero_grad()
        a.loss.backward(), b.loss.backward()
        query_grad = hf.transformer.h[0].attn.c_attn.weight.grad[:, :32].T  # Conv1D (in, 3 x out) -> (out, in)
        for name, grad in (("lm_head.weight", hf.lm_head.weight.grad), ("model.final_norm.scale",
                            hf.transformer.ln_f.weight.grad), ("model.trf_blocks.0.att.W_query.weight", query_grad)):
            assert_close(ours.get_parameter(name).grad, grad, atol=1e-6, rtol=1e-4)
    hidden = torch.randn(2, 9, 32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chunked = lm_head_loss(hidden, ours.lm_head.weight, labels[:2, :9], chunk_size=4)
        plain = torch.nn.functional.cross_entropy(ours.lm_head(hidden)[:, :-1].float().reshape(-1, 50257),
                                                  labels[:2, 1:9].reshape(-1), ignore_index=-100)
    assert_close(chunked, plain, atol=2e-3, rtol=0)
