"""Shared fixtures: tiny configs, seeded randomness, GPT-2/book reference pairs, test text.

The suite needs nothing beside the checkout: text comes from the package (the book's the-verdict.txt) and
tiktoken's GPT-2 encoding from the packaged ranks. ../shared's tinyshakespeare.txt, where it exists, only
adds a bigger corpus to the corpus-parametrised tests.
"""

import logging
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
import torch

import gpt_scratch
from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM
from gpt_scratch.convert import config_to_hf_gpt2, from_hf_gpt2, to_hf_gpt2
from gpt_scratch.data import THE_VERDICT
from gpt_scratch.modeling_gpt_scratch import CACHE_NAME

# The corpora the text tests run on: always the shipped the-verdict.txt; tinyshakespeare where ../shared has it.
_SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"
CORPORA = {"the-verdict.txt": THE_VERDICT} | ({"tinyshakespeare.txt": _SHAKESPEARE} if _SHAKESPEARE.is_file() else {})

# A real-vocabulary GPT small enough for unit tests: the tokenizer works, a forward pass takes milliseconds.
TINY = dict(vocab_size=50257, context_length=64, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


_OUR_CODE = (str(Path(gpt_scratch.__file__).parent), "transformers_modules")


class _DeprecationsFromOurCode(logging.Handler):
    """Collects transformers' logged deprecation notices raised while our code (the package, or its files loaded as
    remote code) is on the stack; transformers' notices about its own internals are not ours to fix."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.notices: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "deprecated" in record.getMessage().lower() and any(
                frame.filename.startswith(_OUR_CODE) or _OUR_CODE[1] in frame.filename
                for frame in traceback.extract_stack()):
            self.notices.append(record.getMessage())


@pytest.fixture(autouse=True)
def _no_logged_deprecations():
    """transformers announces some renames by logging, not by warnings (`past_key_values` read from an output, say):
    such a notice caused by our code fails the test, like the deprecation warnings pyproject.toml turns into errors."""
    handler = _DeprecationsFromOurCode()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    assert not handler.notices, f"transformers logged deprecation notices about our code: {handler.notices}"


def tiny_config(**overrides) -> GPTScratchConfig:
    return GPTScratchConfig(**{**TINY, **overrides})


@pytest.fixture
def tiny_model() -> GPTScratchForCausalLM:
    return GPTScratchForCausalLM(tiny_config()).eval()


def sharpen(model: torch.nn.Module, emb_dim: int) -> None:
    """Re-draw every matrix but the embeddings with std sqrt(5 / emb_dim), so query-key products are of order 5.

    At GPT-2's init (std 0.02) attention is nearly uniform and the next token depends on little but the last one:
    a decoder that loses its KV cache still makes the same greedy tokens, and a generation test cannot fail. With
    sharp attention the continuation depends on the whole prompt (`assert_uses_whole_prompt` checks it).
    """
    std = (5 / emb_dim) ** 0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and not name.endswith(("wte.weight", "wpe.weight", "tok_emb.weight", "pos_emb.weight")):
                p.normal_(0.0, std)


def hf_pair(config: GPTScratchConfig, attn_implementation: str = "sdpa", sharp: bool = True):
    """A random transformers GPT2LMHeadModel and our model holding the same weights, converted with the
    production functions (GPT-2 -> ours with query/key/value biases, ours -> GPT-2 without them).

    `sharp` (the default) re-draws the matrices so the models' continuations depend on the whole prompt (`sharpen`);
    `sharp=False` keeps GPT-2's initialisation."""
    from transformers import GPT2LMHeadModel

    hf_config = config_to_hf_gpt2(config)
    hf_config._attn_implementation = attn_implementation
    hf = GPT2LMHeadModel(hf_config).eval()
    ours = GPTScratchForCausalLM._from_config(config, attn_implementation=attn_implementation).eval()
    # Both initialise LayerNorms to exactly 1/0 and biases to 0: randomise them so a swapped or
    # dropped bias/shift cannot hide.
    source = hf if config.qkv_bias else ours
    if sharp:
        sharpen(source, config.emb_dim)
    with torch.no_grad():
        for name, p in source.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    if config.qkv_bias:
        ours.load_state_dict(from_hf_gpt2(hf.state_dict()), strict=True)
    else:
        hf.load_state_dict(to_hf_gpt2(ours.state_dict()), strict=True)
    return hf, ours


GREEDY = dict(do_sample=False, pad_token_id=50256, eos_token_id=None)


def greedy(model, input_ids: torch.Tensor, max_new_tokens: int = 12, **kwargs) -> list[list[int]]:
    """The greedy continuation (new tokens only) of each row of `input_ids`."""
    out = model.generate(input_ids, max_new_tokens=max_new_tokens, **GREEDY, **kwargs)
    return out[:, input_ids.shape[1]:].tolist()


def assert_uses_whole_prompt(model, prompt: torch.Tensor, max_new_tokens: int = 12) -> None:
    """The sanity check behind every generation test: changing the prompt's first token changes the greedy
    continuation, and decoding with the KV cache equals decoding without it."""
    changed = prompt.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 50256
    continuation = greedy(model, prompt, max_new_tokens)
    assert greedy(model, changed, max_new_tokens) != continuation, "the continuation ignores the prompt's start"
    assert greedy(model, prompt, max_new_tokens, use_cache=False) == continuation, "cached != uncached decoding"


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


__all__ = ["CACHE_NAME", "CORPORA", "GREEDY", "TINY", "THE_VERDICT", "assert_uses_whole_prompt", "greedy", "hf_pair",
           "sharpen", "tiny_config", "gpt_scratch", "run_without_gpt_scratch"]
