"""Batched scoring equals a manual, one-text-at-a-time computation."""

import math

import pytest
import torch
from conftest import hf_pair, tiny_config
from torch.nn import functional as F

from gpt_scratch import load_tokenizer
from gpt_scratch.scoring import score_texts

TEXTS = ["Hello", "Every effort moves you forward, slowly.", "I HAD always thought Jack Gisburn rather a cheap "
         "genius", "a b"]


def _manual(model, tokenizer, text):
    ids = torch.tensor([[50256, *tokenizer(text)["input_ids"]]])
    logits = model(ids).logits[0, :-1]
    log_probs = F.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    return log_probs.sum().item(), ids.shape[1] - 1


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_scores_equal_manual(batch_size):
    _, model = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=True))
    tokenizer = load_tokenizer(model_max_length=64)
    scores = score_texts(model, tokenizer, TEXTS, batch_size=batch_size)
    for text, score in zip(TEXTS, scores):
        log_likelihood, count = _manual(model, tokenizer, text)
        assert score.num_tokens == count
        assert score.log_likelihood == pytest.approx(log_likelihood, abs=1e-3)
        assert score.perplexity == pytest.approx(math.exp(-log_likelihood / count), rel=1e-4)
    # The model's own loss is the mean negative log-likelihood: a second, independent check.
    ids = torch.tensor([[50256, *tokenizer(TEXTS[1])["input_ids"]]])
    assert -scores[1].log_likelihood / scores[1].num_tokens == pytest.approx(model(ids, labels=ids).loss.item(),
                                                                              rel=1e-5)


def test_without_bos_the_first_token_is_context_only():
    _, model = hf_pair(tiny_config())
    tokenizer = load_tokenizer(model_max_length=64)
    [score] = score_texts(model, tokenizer, [TEXTS[1]], prepend_bos=False)
    assert score.num_tokens == len(tokenizer(TEXTS[1])["input_ids"]) - 1


def test_scoring_errors(tiny_model):
    tokenizer = load_tokenizer(model_max_length=64)
    with pytest.raises(ValueError, match="non-empty list"):
        score_texts(tiny_model, tokenizer, "just a string")
    with pytest.raises(ValueError, match="text 1 is 81 tokens, longer than the context length 64"):
        score_texts(tiny_model, tokenizer, ["ok", " a" * 80])
    with pytest.raises(ValueError, match="text 0 has no token to score"):
        score_texts(tiny_model, tokenizer, [""])
