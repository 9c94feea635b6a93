"""The examples run as users run them."""

import subprocess
import sys
from pathlib import Path

from conftest import THE_VERDICT

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_trains_saves_reloads_and_generates(tmp_path):
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--steps", "3", "--out", str(out),
         "--text", str(THE_VERDICT)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 3 steps" in result.stdout
    assert "Every effort moves you" in result.stdout.split("saved to")[-1]
    assert {"model.safetensors", "config.json", "tokenizer.json", "modeling_gpt_scratch.py"} <= {
        p.name for p in out.iterdir()}
    plot = tmp_path / "model-loss.png"
    assert f"training loss plot: {plot}" in result.stdout
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000


def test_quickstart_refuses_a_missing_text_file(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), "--text", str(tmp_path / "nope.txt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "nope.txt not found; pass --text PATH" in result.stderr


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=600)


def test_trainer_example_then_generation_and_scoring_examples(tmp_path):
    out = tmp_path / "trained"
    trained = _run("train_trainer.py", "--steps", "2", "--out", str(out), "--text",
                   str(THE_VERDICT))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "windows of 64 tokens from the-verdict.txt" in trained.stdout and "final training loss" in trained.stdout

    generated = _run("generate.py", "--model", str(out), "--max-new-tokens", "4")
    assert generated.returncode == 0, generated.stderr[-3000:]
    for heading in ("one prompt, greedy", "a batch of prompts", "sampling: three", "streaming, token by token"):
        assert heading in generated.stdout

    scored = _run("score.py", "--model", str(out), "hello world", "a second text")
    assert scored.returncode == 0, scored.stderr[-3000:]
    rows = [line for line in scored.stdout.splitlines() if line.endswith(("hello world", "a second text"))]
    assert len(rows) == 2
