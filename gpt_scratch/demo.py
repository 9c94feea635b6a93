"""`gpt-scratch demo`: the whole path in about a minute on two CPU cores, offline, with nothing but the package.

1. the book's GPT_CONFIG_124M and the four GPT-2 presets, built on the meta device (no memory, no time) to count
   their parameters exactly;
2. a small model of the same architecture trained on the book's the-verdict.txt (shipped with the package) with
   `gpt_scratch.training.train`, the `gpt-scratch train` recipe on transformers' Trainer; its folder holds
   safetensors weights, the tokenizer, a model card, loss.png and metrics.json;
3. that folder reloaded through `AutoModelForCausalLM` / `AutoTokenizer` (the logits must equal the trained
   model's) and continued with `pipeline("text-generation")`.
"""

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .configuration_gpt_scratch import GPTScratchConfig
from .data import THE_VERDICT
from .training import BOOK_START_CONTEXT, TrainingResult, build_model, train

__all__ = ["DemoReport", "run_demo", "format_report", "DEMO_STEPS"]

DEMO_STEPS = 100
# A model of the book's architecture small enough to learn something in a minute on a laptop's CPU: GPT-2's
# vocabulary (so the real tokenizer works), 4 blocks of width 128, a 64-token context, the output head tied.
DEMO_MODEL = dict(context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.1, tie_word_embeddings=True)
_PRESETS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
_DEMO_NAME = "gpt-scratch demo"


@dataclass(frozen=True)
class DemoReport:
    """What the demo did: parameter counts of the book's config and the presets, the training result, the files
    written, the reload check and the sample, with the seconds each part took."""

    book_parameters: int
    preset_parameters: dict[str, int]
    config: dict[str, int | float | bool]
    parameters: int
    training: TrainingResult
    files: dict[str, int]
    reload_seconds: float
    logits_max_difference: float
    prompt: str
    sample: str
    generation_seconds: float
    seconds: float


def run_demo(out: str | os.PathLike = "gpt-scratch-demo", *, steps: int = DEMO_STEPS, progress: bool = True,
             prompt: str = BOOK_START_CONTEXT) -> DemoReport:
    """Run the demo, writing the trained model to `out` (replaced if it holds an earlier demo's output).

    Raises:
        FileExistsError: `out` exists and is not an earlier demo's output.
        ValueError: steps < 1.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from .modeling_gpt_scratch import GPTScratchForCausalLM

    started = time.perf_counter()
    out = Path(out)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if out.exists() and not _is_demo_output(out):
        raise FileExistsError(f"{out} exists and is not an earlier demo's output; pass another --out")
    with torch.device("meta"):
        book_parameters = GPTScratchForCausalLM(GPTScratchConfig()).num_parameters()
        presets = {name: GPTScratchForCausalLM(GPTScratchConfig.from_preset(name)).num_parameters()
                   for name in _PRESETS}

    model, tokenizer = build_model(**DEMO_MODEL, seed=123)
    with tempfile.TemporaryDirectory(prefix="gpt-scratch-demo-") as checkpoints:
        result = train(model, THE_VERDICT, out, tokenizer=tokenizer, max_steps=steps, batch_size=4, lr=1e-3,
                       eval_steps=max(1, steps // 5), eval_batches=2, save_steps=10 * steps,
                       checkpoint_dir=checkpoints, overwrite=True, progress=progress, sample_tokens=30,
                       card_data={"model_name": _DEMO_NAME, "tags": ["demo"]})

    reload_started = time.perf_counter()
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(out)
    ids = reloaded_tokenizer(prompt, return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():
        difference = (reloaded(ids).logits - model(ids).logits).abs().max().item()
    reload_seconds = time.perf_counter() - reload_started

    generation_started = time.perf_counter()
    generator = pipeline("text-generation", model=reloaded, tokenizer=reloaded_tokenizer)
    # Greedy, with a repetition penalty and no repeated word pairs: a model this small and this briefly trained
    # loops on its most frequent tokens otherwise.
    sample = generator(prompt, max_new_tokens=30, do_sample=False, repetition_penalty=1.3,
                       no_repeat_ngram_size=2)[0]["generated_text"]
    generation_seconds = time.perf_counter() - generation_started

    files = {path.name: path.stat().st_size for path in sorted(out.iterdir()) if path.is_file()}
    return DemoReport(book_parameters, presets, DEMO_MODEL, model.num_parameters(), result, files,
                      round(reload_seconds, 2), difference, prompt, sample, round(generation_seconds, 2),
                      round(time.perf_counter() - started, 1))


def _is_demo_output(folder: Path) -> bool:
    """Whether `folder` is what an earlier demo wrote (its model card is titled as the demo names it)."""
    try:
        card = (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return f"\n# {_DEMO_NAME}\n" in card and (folder / "config.json").is_file()


def format_report(report: DemoReport) -> str:
    """The demo's table, as `gpt-scratch demo` prints it."""
    t = report.training
    first, last = t.evaluations[0], t.evaluations[-1]
    rows = [
        ("the book's GPT_CONFIG_124M", f"{report.book_parameters:,} parameters (meta device: no memory used; "
                                       f"untied output head, no qkv bias)"),
        *((f"preset {name}", f"{count:,} parameters") for name, count in report.preset_parameters.items()),
        ("demo model", f"{report.parameters:,} parameters: " + ", ".join(f"{k}={v}" for k, v in report.config.items())),
        ("training text", f"{Path(t.data).name}: {t.data_tokens:,} tokens, {t.train_tokens:,} to train on, "
                          f"{t.validation_tokens:,} to validate"),
        ("training", f"{t.steps} steps of {t.global_batch_size} x {t.context_length} tokens ({t.epochs:g} epochs, "
                     f"{t.tokens_seen:,} tokens) in {t.seconds:.1f} s, {t.tokens_per_second:,.0f} tokens/s"),
        ("training loss", f"{first['train_loss']:.2f} -> {last['train_loss']:.2f}"),
        ("validation loss", f"{first['validation_loss']:.2f} -> {last['validation_loss']:.2f} (perplexity "
                            f"{t.validation_perplexity:,.0f})"),
        ("saved (safetensors)", f"{t.out}: " + ", ".join(f"{name} {_size(size)}" for name, size in
                                                          report.files.items())),
        ("loss plot", str(Path(t.out) / "loss.png") if "loss.png" in report.files else "(pip install matplotlib)"),
        ("reloaded", f"AutoModelForCausalLM + AutoTokenizer in {report.reload_seconds:.1f} s; logits differ from "
                     f"the trained model's by {report.logits_max_difference:.1e}"),
        ("pipeline sample", f"{report.sample!r} ({report.generation_seconds:.1f} s; greedy, 30 new tokens, "
                            f"repetition penalty 1.3)"),
        ("what to expect", f"{t.tokens_seen:,} tokens of training teach a small model the story's commonest words and "
                           f"punctuation, not sense; `gpt-scratch train` runs the book's full chapter-5 recipe"),
        ("total", f"{report.seconds:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _size(n: int) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"
