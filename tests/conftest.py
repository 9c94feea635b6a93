"""Shared fixtures: tiny configs, seeded randomness, GPT-2/book reference pairs, the ../shared data."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

# ../shared sits beside the checkout (and beside CI's clone): corpora, GPT-2's BPE files, tiktoken's cache.
SHARED = Path(__file__).resolve().parents[2] / "shared"
if (SHARED / "tiktoken_cache").is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken_cache"))

import gpt_scratch  # noqa: E402  (after TIKTOKEN_CACHE_DIR is set)
from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM  # noqa: E402
from gpt_scratch.convert import config_to_hf_gpt2, from_hf_gpt2, to_hf_gpt2  # noqa: E402

# A real-vocabulary GPT small enough for unit tests: the tokenizer works, a forward pass takes milliseconds.
TINY = dict(vocab_size=50257, context_length=64, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def shared() -> Path:
    assert SHARED.is_dir(), f"../shared not found at {SHARED}"
    return SHARED


def tiny_config(**overrides) -> GPTScratchConfig:
    return GPTScratchConfig(**{**TINY, **overrides})


@pytest.fixture
def tiny_model() -> GPTScratchForCausalLM:
    return GPTScratchForCausalLM(tiny_config()).eval()


def hf_pair(config: GPTScratchConfig, attn_implementation: str = "sdpa"):
    """A random transformers GPT2LMHeadModel and our model holding the same weights, converted with the
    production functions (GPT-2 -> ours with query/key/value biases, ours -> GPT-2 without them)."""
    from transformers import GPT2LMHeadModel

    hf_config = config_to_hf_gpt2(config)
    hf_config._attn_implementation = attn_implementation
    hf = GPT2LMHeadModel(hf_config).eval()
    ours = GPTScratchForCausalLM._from_config(config, attn_implementation=attn_implementation).eval()
    # Both initialise LayerNorms to exactly 1/0 and biases to 0: randomise them so a swapped or
    # dropped bias/shift cannot hide.
    source = hf if config.qkv_bias else ours
    with torch.no_grad():
        for name, p in source.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    if config.qkv_bias:
        ours.load_state_dict(from_hf_gpt2(hf.state_dict()), strict=True)
    else:
        hf.load_state_dict(to_hf_gpt2(ours.state_dict()), strict=True)
    return hf, ours


# The first lines of every script that must run where gpt_scratch cannot be imported (the remote-code tests).
_BLOCK_GPT_SCRATCH = """import sys
sys.modules["gpt_scratch"] = None  # any `import gpt_scratch...` now raises ImportError
try:
    import gpt_scratch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("gpt_scratch is importable")
"""


def run_without_gpt_scratch(script: str, *args: str, cwd: Path, env: dict[str, str],
                            timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `script` (its arguments in sys.argv[1:]) in a fresh interpreter that cannot import gpt_scratch,
    as a user without the package would, with stdin closed (nobody answers transformers' remote-code prompt)."""
    return subprocess.run([sys.executable, "-c", _BLOCK_GPT_SCRATCH + textwrap.dedent(script), *map(str, args)],
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


__all__ = ["SHARED", "TINY", "tiny_config", "hf_pair", "gpt_scratch", "run_without_gpt_scratch"]
