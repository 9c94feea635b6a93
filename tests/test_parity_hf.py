"""Parity with transformers' own GPT2LMHeadModel holding the same weights: the backbone of the suite."""

import pytest
import torch
from conftest import hf_pair, tiny_config
from torch.testing import assert_close

from gpt_scratch import GPTScratchConfig

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


@pytest.mark.parametrize("attn", ATTN)
def test_greedy_generate_32_tokens_identical(attn):
    hf, ours = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True), attn)
    prompt = torch.randint(0, 50257, (1, 7))
    kwargs = dict(max_new_tokens=32, do_sample=False, pad_token_id=50256, eos_token_id=None)
    expected = hf.generate(prompt, **kwargs)
    got = ours.generate(prompt, **kwargs)
    assert got.shape == (1, 39)
    assert torch.equal(got, expected)


def test_beam_search_identical():
    hf, ours = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True))
    prompt = torch.randint(0, 50257, (2, 6))
    kwargs = dict(max_new_tokens=12, num_beams=4, num_return_sequences=4, do_sample=False,
                  pad_token_id=50256, eos_token_id=None, output_scores=True, return_dict_in_generate=True)
    expected = hf.generate(prompt, **kwargs)
    got = ours.generate(prompt, **kwargs)
    assert torch.equal(got.sequences, expected.sequences)
    assert_close(got.sequences_scores, expected.sequences_scores, atol=1e-4, rtol=0)


def _left_pad(prompts: list[list[int]], pad_id: int = 50256) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("attn", ATTN)
def test_left_padded_batch_equals_transformers_and_unbatched(attn):
    hf, ours = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True), attn)
    prompts = [torch.randint(0, 50256, (n,)).tolist() for n in (3, 9, 6)]
    ids, mask = _left_pad(prompts)
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=50256, eos_token_id=None)
    batched = ours.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(batched, hf.generate(ids, attention_mask=mask, **kwargs))
    for row, prompt in enumerate(prompts):
        alone = ours.generate(torch.tensor([prompt]), **kwargs)
        assert batched[row, ids.shape[1]:].tolist() == alone[0, len(prompt):].tolist()

    # The forward pass itself, positions taken from the mask as generate() does: real tokens' logits match.
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, position_ids=position_ids).logits
        b = hf(ids, attention_mask=mask, position_ids=position_ids).logits
    assert_close(a[mask.bool()], b[mask.bool()], atol=1e-4, rtol=0)


@pytest.mark.parametrize("attn", ATTN)
def test_cached_decoding_step_by_step_equals_full_forward(attn):
    _, ours = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True), attn)
    input_ids = torch.randint(0, 50257, (2, 20))
    with torch.no_grad():
        full = ours(input_ids, use_cache=False).logits
        out = ours(input_ids[:, :8], use_cache=True)
        steps = [out.logits]
        cache = out.past_key_values
        for t in range(8, 20):
            out = ours(input_ids[:, t:t + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits)
    assert cache.get_seq_length() == 20
    assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def gpt2_124m():
    """The real 124M preset, built once for the slow tests below."""
    torch.manual_seed(0)
    return hf_pair(GPTScratchConfig.from_preset("gpt2", drop_rate=0.0), "sdpa")


@pytest.mark.slow
def test_gpt2_124m_logits_for_eager_and_sdpa(gpt2_124m):
    hf, ours = gpt2_124m
    assert ours.num_parameters() == hf.num_parameters() == 124_439_808
    input_ids = torch.randint(0, 50257, (2, 64))
    try:
        for attn in ATTN:
            for model in (hf, ours):
                model.set_attn_implementation(attn)
            with torch.no_grad():
                assert_close(ours(input_ids).logits, hf(input_ids).logits, atol=1e-4, rtol=0)
    finally:
        for model in (hf, ours):
            model.set_attn_implementation("sdpa")


@pytest.mark.slow
def test_gpt2_124m_greedy_beam_and_left_padded_generation(gpt2_124m):
    hf, ours = gpt2_124m
    kwargs = dict(do_sample=False, pad_token_id=50256, eos_token_id=None)
    prompt = torch.randint(0, 50256, (1, 10))
    assert torch.equal(ours.generate(prompt, max_new_tokens=32, **kwargs),
                       hf.generate(prompt, max_new_tokens=32, **kwargs))
    assert torch.equal(ours.generate(prompt, max_new_tokens=8, num_beams=4, **kwargs),
                       hf.generate(prompt, max_new_tokens=8, num_beams=4, **kwargs))
    prompts = [torch.randint(0, 50256, (n,)).tolist() for n in (3, 9, 6)]
    ids, mask = _left_pad(prompts)
    batched = ours.generate(ids, attention_mask=mask, max_new_tokens=8, **kwargs)
    assert torch.equal(batched, hf.generate(ids, attention_mask=mask, max_new_tokens=8, **kwargs))
    for row, p in enumerate(prompts):
        alone = ours.generate(torch.tensor([p]), max_new_tokens=8, **kwargs)
        assert batched[row, ids.shape[1]:].tolist() == alone[0, len(p):].tolist()


@pytest.mark.slow
def test_gpt2_124m_cached_decoding_equals_full_forward(gpt2_124m):
    _, ours = gpt2_124m
    input_ids = torch.randint(0, 50257, (1, 24))
    with torch.no_grad():
        full = ours(input_ids, use_cache=False).logits
        out = ours(input_ids[:, :16], use_cache=True)
        steps = [out.logits]
        for t in range(16, 24):
            out = ours(input_ids[:, t:t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits)
    assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=0)
