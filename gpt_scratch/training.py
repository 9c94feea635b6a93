"""Training on a text file: the book's chapter-5 recipe, on transformers' `Trainer`.

`train(model, "book.txt", "out")` (what `gpt-scratch train` runs):

1. tokenizes the file (`tokenize_file`: streamed, any size) and splits the ids 90/10 into training and validation,
   each cut into non-overlapping windows of `context_length` tokens (the book's `GPTDatasetV1` with stride =
   context length);
2. trains with AdamW (the book's lr 4e-4 and weight decay 0.1 on every parameter), gradient clipping at norm 1,
   optionally linear warmup then cosine decay (the book's appendix D), batches shuffled each epoch;
3. every `eval_steps` steps (and before the first and after the last) measures the loss on the first
   `eval_batches` batches of each split, as the book's `evaluate_model` does, and greedily continues a fixed start
   context ("Every effort moves you") for 50 tokens, as its `generate_and_print_sample`;
4. writes `out`, whole or not at all (`gpt_scratch.files.atomic_folder`): what `save_pretrained` writes (safetensors,
   config, generation_config.json, the code), the tokenizer, a model card (README.md) filled with the run, `loss.png`
   (training and validation loss against steps and tokens seen, as the book plots them) and `metrics.json`.

Trainer gives what a hand-written loop would have to rebuild: checkpoints with optimizer, scheduler and RNG states
(`resume=True` continues the same loss curve), bf16 autocast, and several processes under `torchrun` or
`accelerate launch` with no change (the batch size is per process). Checkpoints are Trainer's own
(`<checkpoint_dir>/checkpoint-<step>`, the last two kept); resumption takes the newest complete one.
"""

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, TrainerCallback

from .configuration_gpt_scratch import GPTScratchConfig
from .data import TokenWindowDataset, collate_windows, tokenize_file
from .files import atomic_folder
from .modeling_gpt_scratch import GPTScratchForCausalLM

__all__ = ["TrainingResult", "build_model", "train", "plot_losses", "BOOK_START_CONTEXT"]

logger = logging.getLogger(__name__)

BOOK_START_CONTEXT = "Every effort moves you"
_SCHEDULES = ("constant", "cosine")
_DTYPES = ("float32", "bfloat16", "float16")
_MODEL_FIELDS = ("context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias", "tie_word_embeddings")


@dataclass(frozen=True)
class TrainingResult:
    """What `train` did; also written to `<out>/metrics.json`.

    Losses are mean cross-entropy in nats per token on the first `eval_batches` batches of each split at the last
    step; perplexity is exp(loss). `seconds` is this call's wall time; `tokens_per_second` counts training steps
    only (not evaluation, sampling or saving), over all processes. `evaluations` holds one dict per evaluation
    (step, tokens_seen, train_loss, validation_loss, sample); `losses` the training loss of every step.
    """

    out: str
    data: str
    data_tokens: int
    train_tokens: int
    validation_tokens: int
    context_length: int
    global_batch_size: int
    processes: int
    steps: int
    epochs: float
    tokens_seen: int
    train_loss: float
    validation_loss: float
    train_perplexity: float
    validation_perplexity: float
    seconds: float
    tokens_per_second: float
    resumed_from_step: int | None
    evaluations: list[dict[str, Any]]
    losses: list[list[float]]


def build_model(
    *,
    preset: str | None = None,
    init: str | os.PathLike | None = None,
    book_config: str | Mapping[str, Any] | None = None,
    seed: int = 123,
    **fields: Any,
) -> tuple[GPTScratchForCausalLM, PreTrainedTokenizerBase]:
    """The model to train, in float32, and its tokenizer.

    init: a model to fine-tune (our folder, a transformers GPT-2 folder or Hub id, converted to ours; the book's
        .pth with `book_config`). Otherwise a new model, initialised with `seed`: a GPT-2 `preset` ("gpt2"/"124M"
        ... "gpt2-xl"/"1558M"), else the book's GPT_CONFIG_124M with the 256-token context of its chapter 5;
        `fields` (emb_dim, n_layers, n_heads, context_length, drop_rate, qkv_bias, tie_word_embeddings) on top.

    Raises:
        ValueError: an unknown preset or field, fields given with `init`, or an invalid configuration.
    """
    from transformers import set_seed

    from .models import check_model, load_tokenizer_for
    from .tokenization_gpt_scratch import load_tokenizer

    unknown = sorted(set(fields) - set(_MODEL_FIELDS))
    if unknown:
        raise ValueError(f"unknown model fields {unknown}; expected some of {', '.join(_MODEL_FIELDS)}")
    fields = {key: value for key, value in fields.items() if value is not None}
    set_seed(seed)
    if init is None:
        config = (GPTScratchConfig.from_preset(preset, **fields) if preset is not None
                  else GPTScratchConfig(**{"context_length": 256, **fields}))
        return GPTScratchForCausalLM(config), load_tokenizer(model_max_length=config.context_length)
    if preset is not None or fields:
        given = ["preset"] * (preset is not None) + sorted(fields)
        raise ValueError(f"{init} brings its own configuration; drop {', '.join(given)} (to fine-tune on shorter "
                         f"windows, pass the training context length to train())")
    kind = check_model(init, book_config)
    if kind == "book":
        from .models import load_model

        loaded = load_model(init, book_config=book_config, dtype=torch.float32)
        return loaded.model, loaded.tokenizer
    model = GPTScratchForCausalLM.from_pretrained(str(init), dtype=torch.float32)
    return model, load_tokenizer_for(init, model.config)


def train(
    model: GPTScratchForCausalLM,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_steps: int | None = None,
    epochs: float = 10,
    batch_size: int = 2,
    context_length: int | None = None,
    lr: float = 4e-4,
    weight_decay: float = 0.1,
    schedule: str = "constant",
    warmup_steps: int = 0,
    max_grad_norm: float = 1.0,
    eval_steps: int = 5,
    eval_batches: int = 5,
    save_steps: int = 50,
    seed: int = 123,
    dtype: str = "float32",
    start_context: str = BOOK_START_CONTEXT,
    sample_tokens: int = 50,
    train_ratio: float = 0.9,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    card_data: Mapping[str, Any] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainingResult:
    """Train `model` on the text file `data` and write the trained model to the folder `out` (see the module
    docstring for the recipe and what is written).

    max_steps: optimizer steps; None trains for `epochs` passes over the training windows (the book: 10).
    batch_size: windows per step and process (the global batch is batch_size x processes).
    context_length: window length, at most the model's (default: the model's context length).
    schedule: "constant" or "cosine" (to 0 at the last step), after `warmup_steps` of linear warmup from 0.
    max_grad_norm: clip the gradients' global norm (0: no clipping).
    dtype: "float32", or "bfloat16"/"float16" for autocast (the weights and optimizer stay float32).
    checkpoint_dir: where Trainer's checkpoints go, every `save_steps` steps and at the end (default: `out` +
        "-checkpoints", beside it). resume: continue from the newest complete checkpoint there.
    overwrite: replace an existing `out` and delete an earlier run's checkpoints (without it, both are refused;
        `resume` replaces `out` too).
    card_data: extra model card metadata, as `push_to_hub` takes it (e.g. {"base_model": "openai-community/gpt2"}).
    callbacks: more `TrainerCallback`s for the Trainer.

    Raises:
        ValueError: a setting out of range, a file too short for one window in each split, a window longer than
            the model's context, `resume` without a checkpoint.
        FileExistsError: `out` exists, or `checkpoint_dir` holds another run's checkpoints (without `overwrite`).
        FileNotFoundError: no such data file.
    """
    from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    from .tokenization_gpt_scratch import load_tokenizer

    started = time.perf_counter()
    out, data = Path(out), Path(data)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out.with_name(f"{out.name}-checkpoints")
    context_length = model.config.context_length if context_length is None else context_length
    _check_settings(model, max_steps=max_steps, epochs=epochs, batch_size=batch_size, context_length=context_length,
                    lr=lr, weight_decay=weight_decay, schedule=schedule, warmup_steps=warmup_steps,
                    max_grad_norm=max_grad_norm, eval_steps=eval_steps, eval_batches=eval_batches,
                    save_steps=save_steps, dtype=dtype, sample_tokens=sample_tokens, train_ratio=train_ratio)
    if out.exists() and not (overwrite or resume):
        raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it")
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_max_length=model.config.context_length)
    prompt_ids = tokenizer(start_context, add_special_tokens=False)["input_ids"] if start_context else []
    if len(prompt_ids) >= context_length:
        raise ValueError(f"the start context is {len(prompt_ids)} tokens, not shorter than the {context_length}-"
                         f"token context")

    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=max_steps if max_steps is not None else -1,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=lr,
        lr_scheduler_type="cosine" if schedule == "cosine" else "constant_with_warmup",
        warmup_steps=warmup_steps,
        max_grad_norm=max_grad_norm,
        bf16=dtype == "bfloat16",
        fp16=dtype == "float16",
        eval_strategy="steps",
        eval_steps=eval_steps,
        prediction_loss_only=True,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        include_num_input_tokens_seen="all",
        seed=seed,
        data_seed=seed,
        report_to="none",
        disable_tqdm=True,
        # Without an accelerator, say so: accelerate then runs several processes as one gloo group (otherwise each
        # process under torchrun would train alone).
        use_cpu=not _has_accelerator(),
        ddp_find_unused_parameters=False,  # every parameter takes part in every step
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    main_process = args.process_index == 0
    with args.main_process_first(desc="checkpoints"):  # one process clears an earlier run's, the others then look
        resume_from = _prepare_checkpoints(checkpoint_dir, resume=resume, overwrite=overwrite)
    args.eval_on_start = resume_from is None  # the losses before the first step; a resumed run has them already
    global_batch = batch_size * args.world_size

    ids = tokenize_file(data, progress=progress and main_process)
    split = int(train_ratio * len(ids))
    train_ids, validation_ids = ids[:split], ids[split:]
    for name, part in (("training", train_ids), ("validation", validation_ids)):
        if len(part) < context_length:
            raise ValueError(
                f"{data} is {len(ids):,} tokens: its {name} split ({len(part):,} tokens) is shorter than one "
                f"{context_length}-token window; use a longer text or a shorter context length"
            )
    train_set = TokenWindowDataset(train_ids, context_length)
    validation_set = TokenWindowDataset(validation_ids, context_length)
    eval_windows = eval_batches * global_batch
    eval_sets = {"train": Subset(train_set, range(min(eval_windows, len(train_set)))),
                 "validation": Subset(validation_set, range(min(eval_windows, len(validation_set))))}

    # The book's optimizer: AdamW with weight decay on every parameter (Trainer's default exempts biases and
    # nn.LayerNorm weights, by type and name, which would miss our LayerNorm's scale and shift by half).
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    log = _TrainingLog(tokenizer, prompt_ids, min(sample_tokens, context_length - len(prompt_ids)),
                       progress=progress and main_process)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_sets,
                      data_collator=collate_windows, processing_class=tokenizer, optimizers=(optimizer, None),
                      callbacks=[log, *callbacks])
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    with _one_progress_bar():
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)

    state = trainer.state
    evaluations, losses = _curve(state.log_history)
    if not evaluations or evaluations[-1]["step"] != state.global_step:  # stopped early by a callback
        trainer.evaluate()
        evaluations, losses = _curve(state.log_history)
    final = evaluations[-1]
    result = TrainingResult(
        out=str(out), data=str(data), data_tokens=len(ids), train_tokens=len(train_ids),
        validation_tokens=len(validation_ids), context_length=context_length, global_batch_size=global_batch,
        processes=args.world_size, steps=state.global_step, epochs=round(state.epoch or 0.0, 4),
        tokens_seen=state.num_input_tokens_seen, train_loss=final["train_loss"],
        validation_loss=final["validation_loss"], train_perplexity=_perplexity(final["train_loss"]),
        validation_perplexity=_perplexity(final["validation_loss"]), seconds=0.0,
        tokens_per_second=log.tokens_per_second(state), resumed_from_step=log.first_step if resume_from else None,
        evaluations=evaluations, losses=losses,
    )
    if main_process:
        with atomic_folder(out, overwrite=True) as folder, _one_progress_bar():
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            result = replace(result, seconds=round(time.perf_counter() - started, 2))
            (folder / "metrics.json").write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
            plot_losses(evaluations, losses, folder / "loss.png", title=f"{data.name}: {result.steps} steps")
            _write_card(folder, out, result, card_data)
    trainer.accelerator.wait_for_everyone()
    return replace(result, seconds=round(time.perf_counter() - started, 2))


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


@contextmanager
def _one_progress_bar() -> Iterator[None]:
    """transformers' own progress bars off (each checkpoint's "Writing model shards" would break up ours)."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


def _check_settings(model: GPTScratchForCausalLM, *, max_steps, epochs, batch_size, context_length, lr, weight_decay,
                    schedule, warmup_steps, max_grad_norm, eval_steps, eval_batches, save_steps, dtype, sample_tokens,
                    train_ratio) -> None:
    def positive_int(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    if not isinstance(model, GPTScratchForCausalLM):
        raise TypeError(f"model must be a GPTScratchForCausalLM (see build_model), got {type(model).__name__}")
    if model.config.vocab_size < 50257:
        raise ValueError(f"the text is tokenized with GPT-2's BPE (50,257 ids), but the model's vocabulary has "
                         f"{model.config.vocab_size}")
    for name, value in (("batch_size", batch_size), ("context_length", context_length), ("eval_steps", eval_steps),
                        ("eval_batches", eval_batches), ("save_steps", save_steps), ("sample_tokens", sample_tokens)):
        positive_int(name, value)
    if max_steps is not None:
        positive_int("max_steps", max_steps)
    elif not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs!r}")
    if context_length > model.config.context_length:
        raise ValueError(f"context length {context_length} is longer than the model's ({model.config.context_length})")
    if not lr > 0 or weight_decay < 0 or max_grad_norm < 0:
        raise ValueError(f"lr must be > 0 and weight decay and max grad norm >= 0, got {lr}, {weight_decay} and "
                         f"{max_grad_norm}")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule {schedule!r} is not one of {', '.join(_SCHEDULES)}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
    if not 0 < train_ratio < 1:
        raise ValueError(f"train_ratio must be in (0, 1), got {train_ratio}")


def _prepare_checkpoints(folder: Path, *, resume: bool, overwrite: bool) -> Path | None:
    """The checkpoint to resume from (None for a fresh run), after clearing an earlier run's if `overwrite`."""
    checkpoints = sorted(folder.glob("checkpoint-*"), key=_step_of) if folder.is_dir() else []
    if resume:
        complete = [path for path in checkpoints if (path / "trainer_state.json").is_file()]
        if not complete:
            raise ValueError(f"nothing to resume: {folder} holds no complete checkpoint (trainer_state.json is "
                             f"written last); train without --resume first")
        if complete[-1] != checkpoints[-1]:
            logger.warning("skipping %s: incomplete (no trainer_state.json)", checkpoints[-1])
        return complete[-1]
    if checkpoints:
        if not overwrite:
            raise FileExistsError(f"{folder} holds checkpoints of an earlier run; pass --resume to continue it, or "
                                  f"--overwrite to start again (deletes them)")
        shutil.rmtree(folder)
    return None


def _step_of(path: Path) -> int:
    suffix = path.name.removeprefix("checkpoint-")
    return int(suffix) if suffix.isdigit() else -1


class _TrainingLog(TrainerCallback):
    """A progress bar with loss and tokens/s; at each evaluation one line (step, tokens seen, both losses) and a
    greedy sample from the start context, kept in the evaluation's log entry (so a resumed run has them too)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int], sample_tokens: int,
                 progress: bool):
        self.tokenizer, self.prompt_ids, self.sample_tokens = tokenizer, prompt_ids, sample_tokens
        self.progress = progress
        self.bar = None
        self.step_seconds = 0.0
        self.first_step = 0
        self.first_tokens = 0
        self._step_started = 0.0
        self._train_loss: dict[int, float] = {}

    def tokens_per_second(self, state) -> float:
        tokens = state.num_input_tokens_seen - self.first_tokens
        return round(tokens / self.step_seconds, 1) if self.step_seconds else 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step, self.first_tokens = state.global_step, state.num_input_tokens_seen
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                        dynamic_ncols=True, disable=not self.progress)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds += time.perf_counter() - self._step_started
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and self.bar is not None:
            self.bar.set_postfix_str(f"loss {logs['loss']:.3f}, {self.tokens_per_second(state):,.0f} tokens/s")

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        metrics = metrics or {}
        if "eval_train_loss" in metrics:
            self._train_loss[state.global_step] = metrics["eval_train_loss"]
        if "eval_validation_loss" not in metrics or not state.is_world_process_zero:
            return
        sample = self._sample(model) if self.prompt_ids and model is not None else ""
        entry = state.log_history[-1]
        if "eval_validation_loss" in entry and entry.get("step") == state.global_step:
            entry["sample"] = sample
        line = (f"step {state.global_step:>6,} | tokens {state.num_input_tokens_seen:>11,} | train loss "
                f"{self._train_loss.get(state.global_step, math.nan):.3f} | validation loss "
                f"{metrics['eval_validation_loss']:.3f} | {sample!r}")
        if self.progress:
            self.bar.write(line)
        else:
            logger.info(line)

    @torch.no_grad()
    def _sample(self, model) -> str:
        """The book's generate_and_print_sample: greedy continuation of the start context."""
        training = model.training
        model.eval()
        ids = torch.tensor([self.prompt_ids], device=model.device)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.sample_tokens,
                             do_sample=False, pad_token_id=self.tokenizer.eos_token_id)
        model.train(training)
        return self.tokenizer.decode(out[0], skip_special_tokens=False).replace("\n", " ")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def _curve(log_history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """(evaluations, [step, loss] of each step) from Trainer's log history, which a resumed run restores."""
    losses = [[entry["step"], entry["loss"]] for entry in log_history if "loss" in entry]
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        for split in ("train", "validation"):
            if f"eval_{split}_loss" in entry:
                record = by_step.setdefault(entry["step"], {"step": entry["step"]})
                record["tokens_seen"] = entry.get("num_input_tokens_seen", 0)
                record[f"{split}_loss"] = entry[f"eval_{split}_loss"]
                if "sample" in entry:
                    record["sample"] = entry["sample"]
    evaluations = [record for _, record in sorted(by_step.items())
                   if "train_loss" in record and "validation_loss" in record]
    return evaluations, losses


def _perplexity(loss: float) -> float:
    return round(math.exp(loss), 4) if loss < 700 else math.inf


def plot_losses(evaluations: Sequence[Mapping[str, Any]], losses: Sequence[Sequence[float]], path: Path,
                title: str = "loss") -> bool:
    """Training and validation loss against steps (bottom axis) and tokens seen (top axis), as the book's
    `plot_losses`, with each step's training loss faint behind them. Returns False (and logs why) where
    matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("no %s: matplotlib is not installed (pip install 'gpt-scratch[plot]')", path.name)
        return False
    steps = [e["step"] for e in evaluations]
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    if losses:
        ax.plot([s for s, _ in losses], [v for _, v in losses], color="tab:blue", alpha=0.25, linewidth=1,
                label="training loss, each step")
    ax.plot(steps, [e["train_loss"] for e in evaluations], "o-", color="tab:blue", markersize=3,
            label="training loss")
    ax.plot(steps, [e["validation_loss"] for e in evaluations], "s--", color="tab:orange", markersize=3,
            label="validation loss")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    last = evaluations[-1] if evaluations else None
    if last and last["step"] and last["tokens_seen"]:
        per_step = last["tokens_seen"] / last["step"]
        top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step, lambda t: t / per_step))
        top.set_xlabel("tokens seen")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _write_card(folder: Path, out: Path, result: TrainingResult, card_data: Mapping[str, Any] | None) -> None:
    """README.md from the model card template, its training table filled with this run."""
    from .hub import render_model_card, training_results_of_run

    card = dict(card_data or {})
    card.setdefault("model_name", out.name)
    card["training_results"] = {**training_results_of_run(asdict(result)), **dict(card.get("training_results") or {})}
    render_model_card(folder, str(out), card).save(folder / "README.md")
