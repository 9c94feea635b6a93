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
