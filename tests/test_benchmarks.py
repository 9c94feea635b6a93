"""The benchmark scripts run and their checks hold (timings are printed, never asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ") and not line.startswith("| workload")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_tokenize_speed_methods_agree():
    rows = [row for row in _table_rows(_run("tokenize_speed.py", "--repeat", "1")) if row[0] != "method"]
    assert len(rows) == 4
    assert all(row[-1] == "yes" for row in rows)


@pytest.mark.slow
def test_convert_memory_measures_a_conversion(tmp_path):
    output = _run("convert_memory.py", "--sizes", "124M", "--max-shard-size", "200MB", "--workdir", str(tmp_path))
    rows = _table_rows(output)
    assert any(row[0] == "baseline" for row in rows)
    assert sum(row[0] == "124M" and row[1].startswith("convert") for row in rows) == 2


def test_speed_table_checks_parity_on_every_row(tmp_path):
    # benchmarks/speed.py on a model small enough for CI (GPT-2's vocabulary, 2 layers of 64): every row is measured
    # and its check holds: the same greedy ids, logits and first loss as transformers' GPT-2, the same first token
    # after loading from safetensors.
    output = _run("speed.py", "--preset", "tiny", "--rows", "decode,prefill,train,load", "--no-compile",
                  "--no-llama-cpp", "--repeat", "1", "--prompt-tokens", "4", "--new-tokens", "4",
                  "--prefill-tokens", "32", "--train-shape", "2x16", "--train-steps", "1", "--load-sizes", "tiny",
                  "--workdir", str(tmp_path))
    assert "torch threads" in output.splitlines()[0]
    rows = {row[0]: row for row in _table_rows(output)}
    decode = [name for name in rows if name.startswith("decode")]
    assert len(decode) == 4 and all(rows[name][1] != "-" for name in decode)
    for name in decode:
        if "int8" in name:
            assert rows[name][2] == "-" and "ids as gpt_scratch bf16" in rows[name][4]  # ours only
        else:
            assert rows[name][2] != "-" and rows[name][4] == "same ids as transformers", rows[name]
    prefill = rows["prefill 32 tokens, all logits, fp32"]
    assert float(prefill[4].split()[-1]) < 1e-4
    train = rows["train step 2x16, AdamW, fp32"]
    first, _, other = train[4].removeprefix("first loss ").partition(" vs ")
    assert abs(float(first) - float(other)) < 1e-3
    assert "step peak" in train[5]
    assert rows["load tiny from safetensors: time to first token (imports included)"][4] == "same first token"


def test_int8_perplexity_reloads_the_same_int8_model():
    output = _run("int8_perplexity.py", "--steps", "20", "--n-layers", "2", "--emb-dim", "64", "--n-heads", "2",
                  "--context-length", "64")
    rows = {row[0]: row for row in _table_rows(output) if row[0] != "weights"}
    assert set(rows) == {"fp32", "bf16", "int8 weights, bf16 activations", "int8, saved and reloaded"}
    assert rows["int8, saved and reloaded"][1:] == rows["int8 weights, bf16 activations"][1:]
    assert abs(float(rows["int8 weights, bf16 activations"][2].rstrip("%"))) < 5  # percent, after 20 steps
