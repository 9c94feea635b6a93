"""Perplexity of a causal LM on a text, with a sliding window, and bits per byte.

The method of transformers' perplexity guide ("Perplexity of fixed-length models"): the text's ids are read in
windows of `context_length` tokens that start every `stride` tokens; each window scores only the tokens that the
previous one did not, so every token is scored once, with at least `context_length - stride` tokens of context
(all of it in the first window). A stride equal to the context length gives disjoint windows (fast, pessimistic);
a smaller one, more context per token (slower, closer to the model's real ability).

Unlike the guide, the count is exact: each window's sum of log-probabilities over exactly the tokens it scores
(the guide weights each window's mean loss by one token fewer than it scored). `<|endoftext|>` goes in front of
the text by default, so its first token is scored too, as GPT-2 saw the start of every document; bits per byte
then covers every byte of the file and compares models with different tokenizers.
"""

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

__all__ = ["Perplexity", "sliding_window_perplexity", "evaluate_text"]


@dataclass(frozen=True)
class Perplexity:
    """tokens: how many were scored; nll: their summed negative log-likelihood (nats); bytes: the text's UTF-8
    bytes (0 where unknown); context_length and stride: the windows'; seconds: the time the model took."""

    tokens: int
    nll: float
    bytes: int
    context_length: int
    stride: int
    seconds: float = 0.0

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood per token, in nats (the cross-entropy loss)."""
        return self.nll / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float | None:
        return self.nll / math.log(2) / self.bytes if self.bytes else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"tokens": self.tokens, "bytes": self.bytes, "nll": self.nll, "loss": self.loss,
                "perplexity": self.perplexity, "bits_per_byte": self.bits_per_byte,
                "context_length": self.context_length, "stride": self.stride, "seconds": self.seconds}


@torch.no_grad()
def sliding_window_perplexity(
    model,
    ids: torch.Tensor,
    *,
    context_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
    n_bytes: int = 0,
    progress: bool = True,
) -> Perplexity:
    """Perplexity of `ids` (1-D) under `model`, a transformers causal LM; the first id is context only.

    context_length: the window, at most the model's (default: the model's). stride: default half the window.

    Raises:
        ValueError: fewer than 2 ids, a window longer than the model's context, stride outside [1, window].
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    limit = getattr(model.config, "max_position_embeddings", None)
    context_length = context_length or limit
    if context_length is None:
        raise ValueError("the model's config does not say its context length; pass context_length")
    if limit is not None and context_length > limit:
        raise ValueError(f"context length {context_length} is longer than the model's ({limit})")
    if context_length < 2:
        raise ValueError(f"context length must be >= 2, got {context_length}")
    stride = context_length // 2 if stride is None else stride
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride must be in [1, {context_length}] (the context length), got {stride}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"need at least 2 token ids (one to predict from, one to score), got {tuple(ids.shape)}")

    started = time.perf_counter()
    windows = list(_windows(len(ids), context_length, stride))
    nll, scored = 0.0, 0
    bar = tqdm(total=len(windows), desc="scoring", unit="window", disable=not progress, leave=False)
    for group in _batches(windows, batch_size):
        begin, end, first = group[0]
        width, keep = end - begin, end - first + 1  # the logits at first - 1 ... end - 1 predict first ... end
        batch = torch.stack([ids[b:e] for b, e, _ in group]).to(model.device)  # (B, T)
        logits = model(input_ids=batch, use_cache=False, logits_to_keep=keep).logits[:, :-1]  # (B, keep - 1, V)
        targets = batch[:, width - keep + 1:]  # (B, keep - 1)
        log_probs = F.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        nll -= log_probs.sum().item()
        scored += targets.numel()
        bar.update(len(group))
    bar.close()
    return Perplexity(scored, nll, n_bytes, context_length, stride, round(time.perf_counter() - started, 3))


def _windows(n: int, context_length: int, stride: int) -> Iterator[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window, as the perplexity guide walks the text."""
    scored_until = 1  # the first token is context only
    for begin in range(0, n, stride):
        end = min(begin + context_length, n)
        if end > scored_until:
            yield begin, end, max(scored_until, begin + 1)
            scored_until = end
        if end == n:
            return


def _batches(windows: list[tuple[int, int, int]], batch_size: int) -> Iterator[list[tuple[int, int, int]]]:
    """Consecutive windows of the same length that score the same number of tokens, `batch_size` at a time."""
    group: list[tuple[int, int, int]] = []
    for window in windows:
        shape = (window[1] - window[0], window[1] - window[2])
        if group and (len(group) == batch_size or (group[0][1] - group[0][0], group[0][1] - group[0][2]) != shape):
            yield group
            group = []
        group.append(window)
    if group:
        yield group


def evaluate_text(
    loaded,
    path: str | os.PathLike,
    *,
    context_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 4,
    prepend_bos: bool = True,
    progress: bool = True,
) -> Perplexity:
    """Sliding-window perplexity and bits per byte of a UTF-8 text file under a `gpt_scratch.models.LoadedModel`,
    tokenized by its own tokenizer (`<|endoftext|>`, the tokenizer's bos token, in front with `prepend_bos`).

    Raises:
        FileNotFoundError, ValueError: as `gpt_scratch.data.check_text_file` and `sliding_window_perplexity`.
    """
    from .data import check_text_file

    path = check_text_file(path)
    with open(path, encoding="utf-8", newline="") as f:  # newline="": the file's bytes, as tokenize_file reads them
        text = f.read()
    tokenizer = loaded.tokenizer
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]  # no "longer than the maximum" note
    if prepend_bos:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise ValueError(f"{loaded.name}'s tokenizer has no bos or end token to put in front of the text")
        ids = [bos, *ids]
    return sliding_window_perplexity(loaded.model, torch.tensor(ids), context_length=context_length, stride=stride,
                                     batch_size=batch_size, n_bytes=len(text.encode("utf-8")), progress=progress)

