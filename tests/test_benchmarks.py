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
def test_model_speed_compares_the_same_model():
    rows = _table_rows(_run("model_speed.py", "--repeat", "1", "--shapes", "1x8", "--new-tokens", "2"))
    assert [row[0] for row in rows] == ["forward 1x8", "generate 32+2 greedy"]
    assert rows[-1][-1] == "same ids"
    assert float(rows[0][-1].split()[-1]) < 1e-4  # max |dlogits|


@pytest.mark.slow
def test_convert_memory_measures_a_conversion(tmp_path):
    output = _run("convert_memory.py", "--sizes", "124M", "--max-shard-size", "200MB", "--workdir", str(tmp_path))
    rows = _table_rows(output)
    assert any(row[0] == "baseline" for row in rows)
    assert sum(row[0] == "124M" and row[1].startswith("convert") for row in rows) == 2
