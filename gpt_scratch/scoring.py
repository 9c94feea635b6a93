"""Batched scoring: the log-likelihood and perplexity of each text under a causal LM."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class SequenceScore:
    """log_likelihood: sum of log p(token | preceding tokens) over the scored tokens (natural log);
    num_tokens: how many tokens were scored; perplexity: exp(-log_likelihood / num_tokens)."""

    log_likelihood: float
    num_tokens: int
    perplexity: float


@torch.no_grad()
def score_texts(model, tokenizer, texts: Sequence[str], *, batch_size: int = 8,
                prepend_bos: bool = True) -> list[SequenceScore]:
    """Score each text independently, in left-padded batches.

    With `prepend_bos` (the default) `<|endoftext|>` goes in front of each text, so its first token is
    scored too, as GPT-2 evaluations do; without it the first token is context only. Positions come from
    the attention mask, so padding changes nothing: a text scores the same alone or in any batch.

    Raises:
        ValueError: an empty list, a text with no token to score, a text longer than the model's context
            length, or batch_size < 1.
    """
    if isinstance(texts, str) or not texts:
        raise ValueError("texts must be a non-empty list of strings")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    limit = model.config.max_position_embeddings
    encoded = []
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if prepend_bos:
            ids = [tokenizer.bos_token_id, *ids]
        if len(ids) < 2:
            raise ValueError(f"text {i} has no token to score ({len(ids)} token(s) including any bos)")
        if len(ids) > limit:
            raise ValueError(f"text {i} is {len(ids)} tokens, longer than the context length {limit}")
        encoded.append(ids)

    scores = []
    device = model.device
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start:start + batch_size]
        width = max(map(len, batch))
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + ids for ids in batch], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # each text starts at position 0 after its padding
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits
        # The logits at t predict token t + 1: (B, T-1, V) against (B, T-1).
        log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
        token_log_probs = log_probs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        scored = mask[:, 1:].bool() & mask[:, :-1].bool()  # a real token predicted from a real token
        totals = (token_log_probs * scored).sum(-1)
        counts = scored.sum(-1)
        for total, count in zip(totals.tolist(), counts.tolist()):
            scores.append(SequenceScore(total, count, float(torch.tensor(-total / count).exp())))
    return scores


__all__ = ["SequenceScore", "score_texts"]
