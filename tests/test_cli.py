"""The `gpt-scratch` command: demo, generate, eval, info, --version, help with examples, and one-line errors."""

import io
import json
import math
import sys

import pytest
import torch
from conftest import THE_VERDICT, assert_uses_whole_prompt, greedy, sharpen, tiny_config
from transformers import AutoModelForCausalLM

from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, load_tokenizer
from gpt_scratch.cli import main
from gpt_scratch.demo import _is_demo_output

PROMPT = "I HAD always thought Jack Gisburn"
COMMANDS = ("demo", "train", "generate", "eval", "info", "convert", "push", "serve", "export")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A saved tiny model whose greedy continuation depends on the whole prompt (`sharpen`), with its tokenizer."""
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True)).eval()
    sharpen(model, model.config.emb_dim)
    path = tmp_path_factory.mktemp("cli") / "model"
    model.save_pretrained(path)
    load_tokenizer(model_max_length=model.config.context_length).save_pretrained(path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_streams_the_greedy_continuation_of_the_whole_prompt(folder, capsys, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = load_tokenizer(model_max_length=64)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    assert_uses_whole_prompt(model, ids, max_new_tokens=8)
    expected = PROMPT + tokenizer.decode(greedy(model, ids, 8)[0]) + "\n"

    assert run(capsys, "generate", folder, PROMPT, "--max-new-tokens", 8)[:2] == (0, expected)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PROMPT + "\n"))  # `echo PROMPT | gpt-scratch generate MODEL -`
    assert run(capsys, "generate", folder, "-", "--max-new-tokens", 8)[:2] == (0, expected)

    sampled = ["generate", folder, PROMPT, "--max-new-tokens", 8, "--temperature", 1.5, "--top-k", 50, "--seed", 3,
               "--num-return-sequences", 2]
    code, first, _ = run(capsys, *sampled)
    assert code == 0 and first.startswith(f"[1] {PROMPT}") and f"\n[2] {PROMPT}" in first
    assert run(capsys, *sampled)[1] == first  # --seed repeats the samples
    beams = run(capsys, "generate", folder, PROMPT, "--max-new-tokens", 4, "--num-beams", 3)
    assert beams[0] == 0 and beams[1].startswith(f"[1] {PROMPT}")


def test_generate_with_int8_weights_is_the_quantized_models_greedy_text(folder, capsys):
    from gpt_scratch import quantize

    model = quantize(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval(), "int8")
    tokenizer = load_tokenizer(model_max_length=64)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    expected = PROMPT + tokenizer.decode(greedy(model, ids, 8)[0]) + "\n"
    argv = ["generate", folder, PROMPT, "--max-new-tokens", 8, "--quantize", "int8"]
    assert run(capsys, *argv, "--dtype", "bfloat16")[:2] == (0, expected)
    assert run(capsys, *argv)[:2] == (0, expected)  # bfloat16 activations by default
    # What generate loads for --quantize: int8 layers over bfloat16 activations, from a folder saved in float.
    from gpt_scratch.modeling_gpt_scratch import Int8Linear
    from gpt_scratch.models import load_model

    loaded = load_model(folder, quantize="int8").model
    assert isinstance(loaded.lm_head, Int8Linear) and loaded.model.tok_emb.weight.dtype == torch.bfloat16
    assert loaded.config.quantization == "int8"


def test_eval_gives_the_same_perplexity_for_ours_and_its_gpt2_conversion(folder, tmp_path, capsys):
    hf = tmp_path / "hf"
    assert run(capsys, "convert", folder, hf, "--to", "hf-gpt2")[0] == 0
    text = tmp_path / "opening.txt"
    text.write_text(THE_VERDICT.read_text(encoding="utf-8")[:600], encoding="utf-8")
    code, out, _ = run(capsys, "eval", folder, hf, text, "--stride", 16, "--json")
    assert code == 0
    ours, theirs = json.loads(out)
    assert (ours["model"], theirs["model"]) == (str(folder), str(hf))  # GPT2LMHeadModel scores the converted one
    assert ours["tokens"] == theirs["tokens"] and ours["perplexity"] == pytest.approx(theirs["perplexity"], rel=1e-5)

    # The perplexity guide's loop, one window at a time, from the model's own loss: <|endoftext|> first, 64-token
    # windows every 16 tokens, each scoring the tokens the previous one did not.
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = load_tokenizer()
    ids = torch.tensor([[50256, *tokenizer(text.read_text(encoding="utf-8"))["input_ids"]]])
    nll, count, previous_end = 0.0, 0, 0
    for begin in range(0, ids.shape[1], 16):
        end = min(begin + 64, ids.shape[1])
        labels = ids[:, begin:end].clone()
        labels[:, :max(previous_end - begin, 0)] = -100
        scored = int((labels[:, 1:] != -100).sum())
        with torch.no_grad():
            nll += model(ids[:, begin:end], labels=labels).loss.item() * scored
        count, previous_end = count + scored, end
        if end == ids.shape[1]:
            break
    assert ours["tokens"] == count == ids.shape[1] - 1  # every token of the text, once
    assert ours["loss"] == pytest.approx(nll / count, rel=1e-5)
    assert ours["bits_per_byte"] == pytest.approx(nll / math.log(2) / len(text.read_bytes()), rel=1e-5)

    code, out, _ = run(capsys, "eval", folder, hf, text)
    header, *rows = out.splitlines()
    assert code == 0 and "perplexity" in header and "bits/byte" in header and len(rows) == 2


def test_info_names_the_preset_and_counts_exactly(folder, tmp_path, capsys):
    GPTScratchConfig.from_preset("117M").save_pretrained(tmp_path / "gpt2")  # info reads the config, no weights
    code, out, _ = run(capsys, "info", tmp_path / "gpt2", "--json")
    described = json.loads(out)
    assert code == 0 and described["preset"] == "gpt2 (124M, 117M)" and described["parameters"] == 124_439_808
    assert described["weight_bytes"] == {"float32": 4 * 124_439_808, "bfloat16": 2 * 124_439_808,
                                         "float16": 2 * 124_439_808}
    assert described["kv_cache_bytes_per_token"]["bfloat16"] == 2 * 12 * 768 * 2
    assert described["requires"] == "transformers>=5.23,<6"

    code, out, _ = run(capsys, "info", folder)
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert code == 0 and lines["preset"] == "none (a custom configuration)"
    parameters = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True)).num_parameters()
    assert lines["parameters"].startswith(f"{parameters:,}")
    assert "model.safetensors" in lines["files"] and "stored as float32" in lines["weights"]

    assert run(capsys, "convert", folder, tmp_path / "book", "--to", "book")[0] == 0
    code, out, _ = run(capsys, "info", tmp_path / "book", "--json")
    assert code == 0 and "the book's GPTModel" in json.loads(out)["format"]


def test_demo_trains_saves_reloads_and_generates(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    assert run(capsys, "demo", "--out", tmp_path / "mine")[0] == 1  # not an earlier demo's output: refused first
    code, out, _ = run(capsys, "demo", "--out", tmp_path / "demo", "--steps", 1)
    assert code == 0
    table = dict(line.split("  ", 1) for line in out.splitlines())
    assert table["the book's GPT_CONFIG_124M"].strip().startswith("163,009,536 parameters")
    assert table["preset gpt2-xl"].strip() == "1,557,611,200 parameters"
    assert "1 steps of 4 x 64 tokens" in table["training"] and "->" in table["validation loss"]
    assert "differ from the trained model's by 0.0e+00" in table["reloaded"]
    assert table["pipeline sample"].strip().startswith("'Every effort moves you")
    written = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"model.safetensors", "loss.png", "metrics.json", "README.md"} <= written
    assert _is_demo_output(tmp_path / "demo")  # so the next demo replaces it


def test_convert_to_book_shows_a_progress_bar_ending_at_the_tensors_written(folder, tmp_path, capsys):
    code, out, err = run(capsys, "convert", folder, tmp_path / "book", "--to", "book")
    tensors = int(out.split(": ")[1].split(" tensors")[0])
    assert code == 0 and tensors == 2 * 13 + 5 + 2  # 13 per block, embeddings, final norm, the untied head, masks
    assert f"{tensors}/{tensors} tensors" in err and f"{tensors - 2}/{tensors - 2}" not in err


def test_version_and_every_help_shows_examples(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("gpt-scratch 0.1.0 (transformers 5.") and "torch 2." in out
    for command in COMMANDS:
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "\nexamples:\n  gpt-scratch" in out, command


def test_presets_as_the_gpt2_paper_spells_them():
    for alias, name in (("117M", "gpt2"), ("345M", "gpt2-medium"), ("762M", "gpt2-large"), ("1542M", "gpt2-xl")):
        assert GPTScratchConfig.from_preset(alias).to_dict() == GPTScratchConfig.from_preset(name).to_dict()


def bad_arguments(tmp, folder):
    """(argv, what the one line says) for each bad argument the issue lists, and a few more."""
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp / "no-model").mkdir(exist_ok=True)
    text = str(THE_VERDICT)
    return [
        (["train", tmp / "missing.txt", tmp / "out"], "no such text file"),
        (["train", tmp / "empty.txt", tmp / "out"], "is empty"),
        (["train", tmp / "binary.txt", tmp / "out"], "holds NUL bytes"),
        (["eval", folder, tmp / "latin1.txt"], "is not UTF-8 text"),
        (["train", text, tmp / "out", "--preset", "gpt5"], "unknown preset 'gpt5'"),
        (["train", text, tmp / "out", "--init", folder, "--context-length", 128], "longer than"),
        (["train", text, tmp / "out", "--n-heads", 5, "--emb-dim", 32], "must be divisible by n_heads"),
        (["generate", folder, PROMPT, "--max-new-tokens", 100], "new tokens fit"),
        (["generate", tmp / "no-model", PROMPT], "is not a model folder"),
        (["generate", tmp / "nowhere" / "model", PROMPT], "no such file or folder"),
        (["generate", folder, PROMPT, "--top-p", 1.5], "must be <= 1.0"),
        (["generate", folder, PROMPT, "--num-return-sequences", 2], "need sampling"),
        (["eval", folder, text, "--context-length", 128], "longer than"),
        (["eval", tmp / "no-model", text], "is not a model folder"),
        (["info", tmp / "no-model"], "is not a model folder"),
        (["train", text], "the following arguments are required: OUT"),
        (["train", text, tmp / "out", "--max-steps", 0], "must be >= 1"),
        (["frobnicate"], "invalid choice"),
    ]


def test_bad_arguments_exit_2_with_one_line_and_no_traceback(folder, tmp_path, capsys):
    for argv, message in bad_arguments(tmp_path, folder):
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "out").exists()


def test_verbose_shows_the_traceback(tmp_path, capsys):
    code, _, err = run(capsys, "--verbose", "train", tmp_path / "missing.txt", tmp_path / "out")
    assert code == 2 and "Traceback (most recent call last)" in err and err.strip().endswith("missing.txt")
