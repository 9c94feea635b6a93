"""Training data: text file -> GPT-2 token ids (tiktoken, streamed) -> sliding windows for `Trainer`.

The book's `GPTDatasetV1` idea (ch. 2): windows of `context_length` tokens every `stride` tokens. Here the
labels are the inputs themselves, because transformers' causal-LM loss shifts them by one position.
"""

import os
import re
from array import array
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .tokenization_gpt_scratch import ENDOFTEXT, load_tiktoken_encoding

ENDOFTEXT_ID = 50256
GPT2_VOCAB_SIZE = 50257

# Edith Wharton's "The Verdict" (1908, public domain), the book's training text, shipped with the package so the
# demo, the examples and the tests have text to train on anywhere (provenance in the-verdict.txt.NOTICE).
THE_VERDICT = Path(__file__).with_name("the-verdict.txt")

# A chunk may end only where GPT-2's pre-tokenizer starts a new piece whatever follows: at a whitespace
# character that comes right after a non-whitespace one. Letters, digits, punctuation runs and
# contractions all stop at whitespace, and the whitespace run that starts there is split by looking
# forward only, so encoding the two sides separately gives exactly the ids of encoding them together.
_SAFE_CUT = re.compile(r"(?<=\S)\s")


def check_text_file(path: str | os.PathLike, *, sniff_bytes: int = 1 << 20) -> Path:
    """`path` as a Path, after the checks that catch a wrong argument before any work: it exists, is a file, is
    not empty, and its first `sniff_bytes` are UTF-8 text without NUL bytes (which no text file has, and nearly
    every binary file does). A bad byte further on is found by `tokenize_file`, which reads it all.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a folder, an empty file, a binary file, or text that is not UTF-8.
    """
    import codecs

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such text file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file (expected a UTF-8 text file)")
    with open(path, "rb") as f:
        head = f.read(sniff_bytes)
    if not head:
        raise ValueError(f"{path} is empty (expected UTF-8 text)")
    if b"\0" in head:
        raise ValueError(f"{path} is not text: it holds NUL bytes (a binary file?); expected UTF-8 text")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < sniff_bytes)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); convert it first, e.g. with "
                         f"iconv -t utf-8") from None
    return path


def tokenize_file(
    path: str | os.PathLike,
    *,
    chunk_chars: int = 1 << 18,
    allow_endoftext: bool = True,
    progress: bool = True,
) -> torch.Tensor:
    """GPT-2 token ids of a UTF-8 text file, as a 1-D int64 tensor, equal to tiktoken's `encode` of the
    whole text.

    The file is read `chunk_chars` characters at a time and cut only where GPT-2's pre-tokenizer would
    cut anyway; one chunk per CPU core is encoded in parallel, so memory holds that many chunks of text
    plus the ids (2 bytes each until the final tensor).
    With `allow_endoftext`, the literal text `<|endoftext|>` becomes id 50256 (the book's setting for
    joining documents); otherwise it is encoded as ordinary text.

    Raises:
        FileNotFoundError: no such file.
        ValueError: `chunk_chars` < 1, or the file is not UTF-8 text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path}")
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be >= 1, got {chunk_chars}")
    encoding = load_tiktoken_encoding()
    allowed = {ENDOFTEXT} if allow_endoftext else set()
    threads = os.cpu_count() or 1
    ids = array("H")  # GPT-2's 50,257 ids fit in 16 bits
    # newline="": the ids are of the characters in the file; universal newlines would turn "\r\n" into "\n".
    with open(path, encoding="utf-8", newline="") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                                              desc=f"tokenizing {path.name}",
                                                              disable=not progress) as bar:
        batch = []
        try:
            for chunk in _safe_chunks(f, chunk_chars):
                batch.append(chunk)
                if len(batch) == threads:  # one chunk per core: tiktoken encodes a batch in parallel threads
                    for chunk_ids in encoding.encode_batch(batch, num_threads=threads, allowed_special=allowed,
                                                           disallowed_special=()):
                        ids.extend(chunk_ids)
                    batch = []
                    bar.update(f.buffer.tell() - bar.n)
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text ({err})") from err
        for chunk_ids in encoding.encode_batch(batch, num_threads=threads, allowed_special=allowed,
                                               disallowed_special=()):
            ids.extend(chunk_ids)
        bar.update(bar.total - bar.n)
    if not ids:
        return torch.empty(0, dtype=torch.int64)
    return torch.frombuffer(ids, dtype=torch.uint16).to(torch.int64)


def _safe_chunks(f, chunk_chars: int):
    """Pieces of the text of `f`, about `chunk_chars` long, each ending at a safe cut (the last one anywhere)."""
    carry = ""
    while block := f.read(chunk_chars):
        text = carry + block
        cut = _last_safe_cut(text)
        if cut == 0:  # no safe cut yet (one very long word): read on
            carry = text
            continue
        yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


def _last_safe_cut(text: str) -> int:
    """Index of the last safe cut in `text`, 0 if there is none (looks at the tail first: it is cheap)."""
    for start in (max(0, len(text) - 4096), 0):
        cut = 0
        for match in _SAFE_CUT.finditer(text, start):
            cut = match.start()
        if cut:
            return cut
    return 0


class TokenWindowDataset(Dataset):
    """Windows of `context_length` token ids, starting every `stride` tokens (the book's GPTDatasetV1).

    Item i is `{"input_ids": ids[i*stride : i*stride + context_length], "labels": the same}` as int64
    tensors; the model shifts the labels. A stride equal to the context length gives non-overlapping
    windows; a tail shorter than a full window is dropped.

    `vocab_size` (GPT-2's 50257 by default; None skips the check) bounds the ids.

    Raises:
        TypeError: ids that are not integers (floats would be truncated).
        ValueError: ids not 1-D or outside [0, vocab_size), context_length or stride < 1, or fewer ids than one
            window.
    """

    def __init__(self, ids: torch.Tensor | Sequence[int], context_length: int, stride: int | None = None, *,
                 vocab_size: int | None = GPT2_VOCAB_SIZE):
        ids = _token_ids(ids, "ids", vocab_size)
        stride = context_length if stride is None else stride
        if ids.ndim != 1:
            raise ValueError(f"ids must be a 1-D sequence of token ids, got shape {tuple(ids.shape)}")
        if context_length < 1 or stride < 1:
            raise ValueError(f"context_length and stride must be >= 1, got {context_length} and {stride}")
        if len(ids) < context_length:
            raise ValueError(f"{len(ids)} token ids are fewer than one window of context_length={context_length}")
        self.ids, self.context_length, self.stride = ids, context_length, stride

    @classmethod
    def from_file(cls, path: str | os.PathLike, context_length: int, stride: int | None = None,
                  **tokenize_kwargs) -> "TokenWindowDataset":
        """Tokenize a text file (see `tokenize_file`) and window it."""
        return cls(tokenize_file(path, **tokenize_kwargs), context_length, stride)

    def __len__(self) -> int:
        return (len(self.ids) - self.context_length) // self.stride + 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = (index % len(self)) * self.stride
        window = self.ids[start:start + self.context_length]
        return {"input_ids": window, "labels": window.clone()}


def collate_windows(
    batch: Sequence[dict[str, torch.Tensor]], pad_token_id: int = ENDOFTEXT_ID, *,
    vocab_size: int | None = GPT2_VOCAB_SIZE,
) -> dict[str, torch.Tensor]:
    """Stack examples into a batch for the model or `Trainer(data_collator=collate_windows)`.

    Examples of different lengths are padded on the right with `pad_token_id`; padding gets
    attention_mask 0 and label -100, so it neither attends nor counts in the loss.

    Raises:
        TypeError: ids or labels that are not integers.
        ValueError: an empty batch, or ids (labels other than -100) outside [0, vocab_size) (None: unchecked).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    batch = [{"input_ids": _token_ids(example["input_ids"], f"batch[{row}]['input_ids']", vocab_size),
              "labels": _token_ids(example.get("labels", example["input_ids"]), f"batch[{row}]['labels']",
                                   vocab_size, ignore=-100)}
             for row, example in enumerate(batch)]
    width = max(len(example["input_ids"]) for example in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.int64)
    labels = torch.full((len(batch), width), -100, dtype=torch.int64)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.int64)
    for row, example in enumerate(batch):
        n = len(example["input_ids"])
        input_ids[row, :n] = torch.as_tensor(example["input_ids"])
        labels[row, :n] = torch.as_tensor(example.get("labels", example["input_ids"]))
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _token_ids(ids: torch.Tensor | Sequence[int], name: str, vocab_size: int | None,
               ignore: int | None = None) -> torch.Tensor:
    """`ids` as an int64 tensor, after checking they are integers in [0, vocab_size) (or `ignore`)."""
    tensor = torch.as_tensor(ids)
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be integer token ids, got dtype {tensor.dtype} (a float would be truncated)")
    tensor = tensor.to(torch.int64)
    if vocab_size is not None:
        outside = (tensor < 0) | (tensor >= vocab_size)
        if ignore is not None:
            outside &= tensor != ignore
        if bool(outside.any()):
            allowed = f"[0, {vocab_size})" + (f" or {ignore}" if ignore is not None else "")
            raise ValueError(f"{name} holds {tensor[outside][0].item()}, outside the vocabulary {allowed}")
    return tensor


__all__ = ["check_text_file", "tokenize_file", "TokenWindowDataset", "collate_windows"]
