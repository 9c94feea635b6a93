"""The examples run as users run them."""

import subprocess
import sys
from pathlib import Path

from conftest import SHARED

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_trains_saves_reloads_and_generates(tmp_path):
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--steps", "3", "--out", str(out),
         "--text", str(SHARED / "corpora" / "the-verdict.txt")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 3 steps" in result.stdout
    assert "Every effort moves you" in result.stdout.split("saved to")[-1]
    assert {"model.safetensors", "config.json", "tokenizer.json", "modeling_gpt_scratch.py"} <= {
        p.name for p in out.iterdir()}


def test_quickstart_refuses_a_missing_text_file(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), "--text", str(tmp_path / "nope.txt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "nope.txt not found; pass --text PATH" in result.stderr
