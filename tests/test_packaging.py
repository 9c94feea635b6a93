"""The wheel users install carries the package data the code reads at run time."""

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from gpt_scratch import TRANSFORMERS_REQUIREMENT
from gpt_scratch.tokenization_gpt_scratch import GPT2_TIKTOKEN_SHA256

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_has_ranks_notice_model_card_and_console_script(tmp_path):
    # Built from a copy, so setuptools' build/ folder lands in tmp_path, not in the checkout; symlinks stay links.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "out", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"))
    # --no-build-isolation: setuptools comes from the environment (torch requires it), so no download.
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [wheel] = tmp_path.glob("gpt_scratch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        ranks = archive.read("gpt_scratch/gpt2.tiktoken")
        card = archive.read("gpt_scratch/model_card.md")
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert hashlib.sha256(ranks).hexdigest() == GPT2_TIKTOKEN_SHA256
    assert "gpt_scratch/gpt2.tiktoken.NOTICE" in names
    assert archive_text(wheel, "gpt_scratch/the-verdict.txt") == (ROOT / "gpt_scratch" / "the-verdict.txt").read_text()
    assert "gpt_scratch/the-verdict.txt.NOTICE" in names
    assert card == (ROOT / "model_card.md").read_bytes()  # the template itself, not a link to it
    for module in ("configuration_gpt_scratch", "modeling_gpt_scratch", "tokenization_gpt_scratch", "convert",
                   "checkpoint", "data", "scoring", "hub", "cli"):
        assert f"gpt_scratch/{module}.py" in names
    assert "gpt-scratch = gpt_scratch.cli:main" in entry_points


def archive_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8")


def test_declared_transformers_range_is_the_tested_one():
    assert f'    "{TRANSFORMERS_REQUIREMENT}",' in (ROOT / "pyproject.toml").read_text().splitlines()
