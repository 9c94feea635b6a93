"""Every example runs, with its command-line arguments, as `python examples/NAME.py ...` would run it (in-process
through runpy, which runs the file as __main__: the same code, without a second interpreter's start-up)."""

import runpy
import sys
from pathlib import Path

import pytest
import torch
from conftest import THE_VERDICT, assert_uses_whole_prompt, greedy, sharpen, tiny_config
from transformers import AutoModelForCausalLM, GPT2LMHeadModel

from gpt_scratch import GPTScratchForCausalLM, load_tokenizer
from gpt_scratch.convert import config_to_hf_gpt2

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(monkeypatch, capsys, name: str, *args) -> str:
    """Run examples/<name> with these arguments; returns what it printed."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *map(str, args)])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_chapter_5_experiment_then_fine_tuning_with_trainer(tmp_path, monkeypatch, capsys):
    out = tmp_path / "chapter5"
    printed = run_example(monkeypatch, capsys, "chapter5.py", THE_VERDICT, "--out", out, "--max-steps", "3",
                          "--n-layers", "1", "--emb-dim", "32", "--n-heads", "2", "--context-length", "64",
                          "--eval-freq", "1", "--eval-iter", "1")
    assert "Ep 1 (Step 000000): Train loss" in printed and "Ep 1 (Step 000002)" in printed
    assert "\nEvery effort moves you" in printed  # the sample after the epoch
    assert (tmp_path / "chapter5-loss.png").read_bytes().startswith(b"\x89PNG")
    assert AutoModelForCausalLM.from_pretrained(out).config.n_layers == 1

    printed = run_example(monkeypatch, capsys, "finetune.py", out, THE_VERDICT, "--out", tmp_path / "tuned",
                          "--steps", "2", "--context-length", "32", "--lr", "1e-3")
    assert "validation loss" in printed and "->" in printed and f"saved to {tmp_path / 'tuned'}" in printed
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "tuned").config.n_layers == 1


def test_generation_and_scoring_examples(tmp_path, monkeypatch, capsys):
    model = GPTScratchForCausalLM(tiny_config()).eval()
    sharpen(model, model.config.emb_dim)
    tokenizer = load_tokenizer(model_max_length=64)
    prompt = "I HAD always thought Jack Gisburn"
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert_uses_whole_prompt(model, ids, max_new_tokens=6)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")

    printed = run_example(monkeypatch, capsys, "generate.py", "--model", tmp_path / "model", "--prompt", prompt,
                          "--max-new-tokens", "6")
    expected = prompt + tokenizer.decode(greedy(model, ids, 6)[0])
    assert printed.split("== one prompt, greedy\n")[1].split("\n")[0] == expected.split("\n")[0]
    for heading in ("a batch of prompts", "sampling: three", "streaming, token by token"):
        assert heading in printed

    printed = run_example(monkeypatch, capsys, "score.py", "--model", tmp_path / "model", "hello world", "a second")
    assert len([line for line in printed.splitlines() if line.endswith(("hello world", "a second"))]) == 2


def test_convert_example_matches_gpt2(tmp_path, monkeypatch, capsys):
    gpt2 = GPT2LMHeadModel(config_to_hf_gpt2(tiny_config(qkv_bias=True, tie_word_embeddings=True))).eval()
    sharpen(gpt2, 32)
    gpt2.save_pretrained(tmp_path / "gpt2")
    text = tmp_path / "opening.txt"
    text.write_text(THE_VERDICT.read_text(encoding="utf-8")[:1500], encoding="utf-8")

    printed = run_example(monkeypatch, capsys, "convert.py", tmp_path / "gpt2", tmp_path / "ours", "--text", text)
    assert "greedy tokens identical" in printed
    difference = float(printed.split("differ from GPT2LMHeadModel's by at most ")[1].split(";")[0])
    assert difference < 1e-4
    perplexities = [float(line.split("perplexity ")[1].split(", ")[0].replace(",", ""))
                    for line in printed.splitlines() if "bits per byte" in line]
    assert len(perplexities) == 2 and perplexities[0] == pytest.approx(perplexities[1], rel=1e-5)
    torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(tmp_path / "ours-hf").state_dict(),
                               gpt2.state_dict())


def test_examples_refuse_a_missing_text_file(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit:
        run_example(monkeypatch, capsys, "chapter5.py", tmp_path / "nope.txt")
    assert exit.value.code == 2 and "nope.txt not found" in capsys.readouterr().err
