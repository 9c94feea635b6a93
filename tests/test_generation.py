"""generate() as users call it: saved defaults, the context limit, torch.compile (parity: test_generation_parity)."""

import json
import logging
import warnings

import pytest
import torch
from conftest import CACHE_NAME, tiny_config
from torch.testing import assert_close
from transformers import StaticCache

from gpt_scratch import GPTScratchForCausalLM, load_tokenizer


def test_generation_config_json_carries_defaults(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["eos_token_id"] == saved["pad_token_id"] == saved["bos_token_id"] == 50256
    assert saved["max_new_tokens"] == 32  # half of the tiny model's 64-token context
    big = GPTScratchForCausalLM(tiny_config(context_length=1024))
    assert big.generation_config.max_new_tokens == 256
    assert GPTScratchForCausalLM.from_pretrained(tmp_path).generation_config.max_new_tokens == 32


def test_bare_generate_neither_warns_nor_runs_past_the_context(tiny_model, caplog):
    tokenizer = load_tokenizer(model_max_length=64)
    inputs = tokenizer(["Hello, I am", "Every effort moves you"], return_tensors="pt", padding=True)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        out = tiny_model.generate(**inputs)
    assert caplog.records == []
    assert inputs["input_ids"].shape[1] < out.shape[1] <= inputs["input_ids"].shape[1] + 32
    long_prompt = torch.randint(0, 50256, (1, 40))
    with pytest.raises(ValueError, match="longer than the context length 64; lower max_new_tokens to at most 24"):
        tiny_model.generate(long_prompt)
    assert tiny_model.generate(long_prompt, max_new_tokens=24, eos_token_id=None).shape == (1, 64)


def test_torch_compile_fullgraph_forward_and_static_cache_step():
    model = GPTScratchForCausalLM(tiny_config(n_layers=1)).eval()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)  # a graph break would raise
    input_ids = torch.randint(0, 50257, (2, 16))
    with torch.no_grad():
        expected = model(input_ids, use_cache=False).logits
        assert_close(compiled(input_ids, use_cache=False).logits, expected, atol=1e-5, rtol=0)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, :3] = 0
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        assert_close(
            compiled(input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).logits,
            model(input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).logits,
            atol=1e-5, rtol=0,
        )
        # A decode step into a static cache, compiled: the shape-stable loop that serving uses.
        cache = StaticCache(config=model.config, max_cache_len=32)
        model(input_ids[:, :15], **{CACHE_NAME: cache}, use_cache=True, position_ids=torch.arange(15)[None])
        step = compiled(input_ids[:, 15:], **{CACHE_NAME: cache}, use_cache=True, position_ids=torch.tensor([[15]]))
        assert_close(step.logits[:, -1], expected[:, -1], atol=1e-5, rtol=0)
