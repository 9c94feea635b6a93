"""Parity with the book's GPTModel (package llms-from-scratch): same weights, same logits, same tokens."""

import pytest
import torch
from conftest import tiny_config
from llms_from_scratch.ch04 import GPTModel, generate_text_simple
from torch.testing import assert_close

from gpt_scratch import GPTScratchForCausalLM
from gpt_scratch.convert import config_from_book, config_to_book, from_book, to_book
from gpt_scratch.tokenization_gpt_scratch import load_tiktoken_encoding

# The book's chapter 4 configuration.
GPT_CONFIG_124M = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def _book_pair(book_cfg: dict):
    book = GPTModel(book_cfg).eval()
    with torch.no_grad():  # the book initialises LayerNorm to 1/0: randomise so a swap cannot hide
        for name, p in book.named_parameters():
            if name.endswith(("scale", "shift")):
                p.add_(torch.randn_like(p) * 0.1)
    ours = GPTScratchForCausalLM(config_from_book(book_cfg)).eval()
    ours.load_state_dict(from_book(book.state_dict()), strict=True)
    return book, ours


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_logits_match_book(qkv_bias):
    book_cfg = config_to_book(tiny_config(qkv_bias=qkv_bias))
    book, ours = _book_pair(book_cfg)
    input_ids = torch.randint(0, 50257, (3, 30))
    with torch.no_grad():
        assert_close(ours(input_ids).logits, book(input_ids), atol=1e-4, rtol=0)


def test_round_trip_book_ours_book_is_exact():
    book_cfg = config_to_book(tiny_config(qkv_bias=True))
    book, ours = _book_pair(book_cfg)
    back = to_book(ours.state_dict())
    original = book.state_dict()
    assert back.keys() == original.keys()
    for key in original:
        assert torch.equal(back[key], original[key]), key
    GPTModel(book_cfg).load_state_dict(back, strict=True)


def test_greedy_hello_i_am_equals_generate_text_simple():
    """The book's chapter 4 experiment: seed 123, GPT_CONFIG_124M, 'Hello, I am', 10 new tokens."""
    torch.manual_seed(123)
    book = GPTModel(GPT_CONFIG_124M).eval()
    ours = GPTScratchForCausalLM(config_from_book(GPT_CONFIG_124M)).eval()
    ours.load_state_dict(from_book(book.state_dict()), strict=True)

    enc = load_tiktoken_encoding()
    prompt = torch.tensor([enc.encode("Hello, I am")])
    expected = generate_text_simple(book, prompt, max_new_tokens=10, context_size=1024)
    got = ours.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=50256, eos_token_id=None)
    assert got.tolist() == expected.tolist()
    assert got.shape == (1, 14)
