"""Every way users decode, against transformers' GPT2LMHeadModel with the same weights.

The models here are sharpened (`conftest.sharpen`): their greedy continuation depends on the whole prompt, which
each test checks first, so a decoder that loses or misreads its KV cache makes other tokens and the test fails.
Decoding with the cache is compared with decoding without it as well as with GPT-2. The KV cache is passed and read
under the running transformers' name (`CACHE_NAME`: `cache` from 5.24, `past_key_values` before).
"""

import copy

import pytest
import torch
from conftest import CACHE_NAME, GREEDY, assert_uses_whole_prompt, greedy, hf_pair, tiny_config
from torch.testing import assert_close
from transformers import CompileConfig, DynamicCache

from gpt_scratch import GPTScratchConfig

ATTN = ["eager", "sdpa"]
GPT2_LIKE = dict(qkv_bias=True, tie_word_embeddings=True)


@pytest.fixture(scope="module", params=ATTN)
def pair(request):
    torch.manual_seed(0)
    return hf_pair(tiny_config(**GPT2_LIKE), request.param)


@pytest.fixture
def prompt():
    return torch.randint(0, 50256, (1, 7))


def _left_pad(prompts: list[list[int]], pad_id: int = 50256) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def test_greedy_32_tokens_equal_gpt2_with_and_without_cache(pair, prompt):
    hf, ours = pair
    assert_uses_whole_prompt(ours, prompt)
    expected = greedy(hf, prompt, 32)
    assert greedy(ours, prompt, 32) == expected
    assert greedy(ours, prompt, 32, use_cache=False) == expected
    assert len(set(expected[0])) > 8  # not one token over and over


def test_beam_search_equals_gpt2(pair):
    hf, ours = pair
    prompt = torch.randint(0, 50256, (2, 6))
    assert_uses_whole_prompt(ours, prompt[:1])
    kwargs = dict(max_new_tokens=12, num_beams=4, num_return_sequences=4, output_scores=True,
                  return_dict_in_generate=True, **GREEDY)
    expected = hf.generate(prompt, **kwargs)
    got = ours.generate(prompt, **kwargs)
    assert torch.equal(got.sequences, expected.sequences)
    assert_close(got.sequences_scores, expected.sequences_scores, atol=1e-4, rtol=0)
    assert torch.equal(ours.generate(prompt, **kwargs, use_cache=False).sequences, expected.sequences)


def test_left_padded_batch_equals_gpt2_and_each_prompt_alone(pair):
    hf, ours = pair
    prompts = [torch.randint(0, 50256, (n,)).tolist() for n in (3, 9, 6)]
    ids, mask = _left_pad(prompts)
    kwargs = dict(max_new_tokens=10, **GREEDY)
    batched = ours.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(batched, hf.generate(ids, attention_mask=mask, **kwargs))
    for row, prompt in enumerate(prompts):
        assert batched[row, ids.shape[1]:].tolist() == greedy(ours, torch.tensor([prompt]), 10)[0]
    # The forward pass itself, positions from the mask as generate() makes them: real tokens' logits match.
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, position_ids=position_ids).logits
        b = hf(ids, attention_mask=mask, position_ids=position_ids).logits
    assert_close(a[mask.bool()], b[mask.bool()], atol=1e-4, rtol=0)


def test_static_cache_equals_gpt2_and_the_dynamic_cache(pair):
    hf, ours = pair
    prompts = [torch.randint(0, 50256, (n,)).tolist() for n in (1, 3, 8)]
    ids, mask = _left_pad(prompts)
    kwargs = dict(attention_mask=mask, max_new_tokens=12, **GREEDY)
    dynamic = ours.generate(ids, **kwargs)
    assert torch.equal(ours.generate(ids, cache_implementation="static", **kwargs), dynamic)
    assert torch.equal(hf.generate(ids, cache_implementation="static", **kwargs), dynamic)


def test_continuing_from_the_returned_cache_equals_one_call(pair, prompt):
    hf, ours = pair
    expected = greedy(hf, prompt, 12)
    for model in (ours, hf):
        first = model.generate(prompt, max_new_tokens=5, return_dict_in_generate=True, **GREEDY)
        cache = first[CACHE_NAME]
        assert isinstance(cache, DynamicCache) and cache.get_seq_length() == prompt.shape[1] + 4
        more = model.generate(first.sequences, max_new_tokens=7, **{CACHE_NAME: copy.deepcopy(cache)}, **GREEDY)
        assert more[:, prompt.shape[1]:].tolist() == expected, type(model).__name__


def test_generation_from_inputs_embeds_and_continuing_it(pair, prompt):
    hf, ours = pair
    expected = greedy(hf, prompt, 8)
    embeds = ours.get_input_embeddings()(prompt).detach()
    for model in (ours, hf):
        # From embeddings, generate() returns the new tokens only.
        whole = model.generate(inputs_embeds=embeds, max_new_tokens=8, **GREEDY)
        assert whole.tolist() == expected, type(model).__name__
        first = model.generate(inputs_embeds=embeds, max_new_tokens=5, return_dict_in_generate=True, **GREEDY)
        more_embeds = torch.cat([embeds, model.get_input_embeddings()(first.sequences).detach()], dim=1)
        rest = model.generate(inputs_embeds=more_embeds, max_new_tokens=3, **{CACHE_NAME: first[CACHE_NAME]},
                              **GREEDY)
        assert torch.cat([first.sequences, rest], dim=1).tolist() == expected, type(model).__name__


def test_assisted_decoding_equals_gpt2_and_plain_greedy(pair, prompt):
    hf, ours = pair
    torch.manual_seed(1)
    hf_assistant, assistant = hf_pair(tiny_config(n_layers=1, **GPT2_LIKE), ours.config._attn_implementation)
    expected = greedy(ours, prompt, 16)
    assert greedy(ours, prompt, 16, assistant_model=assistant) == expected
    assert greedy(hf, prompt, 16, assistant_model=hf_assistant) == expected
    # Prompt lookup (the assistant-free variant) crops the cache too.
    assert greedy(ours, prompt.repeat(1, 2), 16, prompt_lookup_num_tokens=3) == greedy(hf, prompt.repeat(1, 2), 16)


def test_compiled_decoding_with_a_static_cache_equals_gpt2():
    torch.manual_seed(0)
    hf, ours = hf_pair(tiny_config(n_layers=1, **GPT2_LIKE))
    prompt = torch.randint(0, 50256, (2, 6))
    assert_uses_whole_prompt(ours, prompt[:1])
    # generate() compiles the decoding step (fullgraph) when the cache is static; _compile_all_devices lets it on CPU.
    compile_config = CompileConfig(fullgraph=True, dynamic=False, mode="default")
    compile_config._compile_all_devices = True
    got = greedy(ours, prompt, 10, cache_implementation="static", compile_config=compile_config)
    assert got == greedy(hf, prompt, 10)


def test_hand_written_decoding_loop_equals_the_full_forward(pair):
    _, ours = pair
    input_ids = torch.randint(0, 50257, (2, 20))
    with torch.no_grad():
        full = ours(input_ids, use_cache=False).logits
        for name in (CACHE_NAME, "cache", "past_key_values"):  # today's name, and the other one
            out = ours(input_ids[:, :8], use_cache=True)
            steps = [out.logits]
            for t in range(8, 20):
                out = ours(input_ids[:, t:t + 1], **{name: getattr(out, CACHE_NAME)}, use_cache=True)
                steps.append(out.logits)
            assert getattr(out, CACHE_NAME).get_seq_length() == 20
            assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_the_cache_passed_twice_is_an_error(pair):
    _, ours = pair
    cache = ours(torch.randint(0, 50257, (1, 4)), use_cache=True)[CACHE_NAME]
    with pytest.raises(ValueError, match="pass the KV cache once"):
        ours(torch.randint(0, 50257, (1, 1)), cache=cache, past_key_values=cache)


# ----- the real 124M preset, once ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_124m():
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
    prompt = torch.randint(0, 50256, (1, 10))
    assert_uses_whole_prompt(ours, prompt, 8)
    assert greedy(ours, prompt, 32) == greedy(hf, prompt, 32)
    assert greedy(ours, prompt, 8, num_beams=4) == greedy(hf, prompt, 8, num_beams=4)
    prompts = [torch.randint(0, 50256, (n,)).tolist() for n in (3, 9, 6)]
    ids, mask = _left_pad(prompts)
    batched = greedy(ours, ids, 8, attention_mask=mask)
    assert batched == greedy(hf, ids, 8, attention_mask=mask)
    for row, p in enumerate(prompts):
        assert batched[row] == greedy(ours, torch.tensor([p]), 8)[0]


@pytest.mark.slow
def test_gpt2_124m_cached_decoding_equals_full_forward(gpt2_124m):
    _, ours = gpt2_124m
    input_ids = torch.randint(0, 50257, (1, 24))
    with torch.no_grad():
        full = ours(input_ids, use_cache=False).logits
        out = ours(input_ids[:, :16], use_cache=True)
        steps = [out.logits]
        for t in range(16, 24):
            out = ours(input_ids[:, t:t + 1], **{CACHE_NAME: out[CACHE_NAME]}, use_cache=True)
            steps.append(out.logits)
    assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=0)

