"""The training-data path: streamed tiktoken ids, sliding windows, a collate that Trainer accepts."""

import random

import pytest
import torch
from conftest import CORPORA, THE_VERDICT, tiny_config
from transformers import Trainer, TrainingArguments

from gpt_scratch import GPTScratchForCausalLM
from gpt_scratch.data import TokenWindowDataset, collate_windows, tokenize_file
from gpt_scratch.tokenization_gpt_scratch import load_tiktoken_encoding


@pytest.mark.parametrize("chunk_chars", [37, 1009, 4096, 1 << 18])
@pytest.mark.parametrize("name", CORPORA)
def test_streamed_ids_equal_tiktoken_on_the_whole_text(name, chunk_chars):
    path = CORPORA[name]
    expected = load_tiktoken_encoding().encode(path.read_text(encoding="utf-8"))
    ids = tokenize_file(path, chunk_chars=chunk_chars, progress=False)
    assert ids.dtype == torch.int64
    assert ids.tolist() == expected


def test_chunk_cuts_never_change_ids_on_adversarial_text(tmp_path):
    rng = random.Random(0)
    pieces = ["  ", "\n\n", "\r\n", "\t", " don't", "'s", "1234567", "!!!", "<|endoftext|>", "日本語", " 🙂", "x",
              "word", "  \n ", "'ll", "...", " "]
    text = "".join(rng.choice(pieces) for _ in range(3000))
    path = tmp_path / "mixed.txt"
    path.write_text(text, encoding="utf-8")
    encoding = load_tiktoken_encoding()
    for chunk_chars in (1, 2, 7, 64):
        assert tokenize_file(path, chunk_chars=chunk_chars, progress=False).tolist() == encoding.encode(
            text, allowed_special={"<|endoftext|>"}), chunk_chars
    assert tokenize_file(path, chunk_chars=5, allow_endoftext=False, progress=False).tolist() == encoding.encode(
        text, disallowed_special=())


def test_tokenize_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such text file"):
        tokenize_file(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe not utf-8")
    with pytest.raises(ValueError, match="bad.txt is not UTF-8 text"):
        tokenize_file(tmp_path / "bad.txt", progress=False)
    with pytest.raises(ValueError, match="chunk_chars must be >= 1"):
        tokenize_file(THE_VERDICT, chunk_chars=0)
    (tmp_path / "empty.txt").write_text("")
    assert tokenize_file(tmp_path / "empty.txt", progress=False).tolist() == []


def test_windows_follow_the_books_sliding_window():
    ids = torch.arange(20)
    dataset = TokenWindowDataset(ids, context_length=4, stride=3)
    assert len(dataset) == 6
    assert [dataset[i]["input_ids"].tolist() for i in range(len(dataset))] == [
        [0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9, 10, 11, 12], [12, 13, 14, 15], [15, 16, 17, 18]]
    assert torch.equal(dataset[-1]["labels"], dataset[5]["input_ids"])
    assert len(TokenWindowDataset(ids, context_length=4)) == 5  # stride defaults to the context length
    with pytest.raises(IndexError, match="window 6 out of range for 6 windows"):
        dataset[6]
    with pytest.raises(ValueError, match="fewer than one window"):
        TokenWindowDataset(torch.arange(3), context_length=4)
    with pytest.raises(ValueError, match="must be >= 1"):
        TokenWindowDataset(ids, context_length=4, stride=0)


def test_collate_pads_right_with_masked_labels():
    batch = collate_windows([{"input_ids": torch.tensor([1, 2, 3])}, {"input_ids": torch.tensor([4])}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 50256, 50256]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, -100, -100]]


def test_trainer_runs_on_the_dataset_and_learns(tmp_path):
    dataset = TokenWindowDataset.from_file(THE_VERDICT, context_length=32, stride=32,
                                           progress=False)
    model = GPTScratchForCausalLM(tiny_config())
    before = model.model.trf_blocks[0].att.W_query.weight.detach().clone()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=12, per_device_train_batch_size=8,
                             learning_rate=3e-3, logging_steps=1, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate_windows)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert not torch.equal(before, model.model.trf_blocks[0].att.W_query.weight)
    trainer.save_model(tmp_path / "final")
    assert (tmp_path / "final" / "model.safetensors").is_file()
