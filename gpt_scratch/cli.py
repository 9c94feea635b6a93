"""The `gpt-scratch` command line: one plain function per subcommand, heavy imports inside each.

    gpt-scratch demo                       the whole path in a minute, offline: train, save, reload, generate
    gpt-scratch train DATA OUT [...]       the book's chapter-5 training on a text file (transformers' Trainer)
    gpt-scratch generate MODEL PROMPT      continue a prompt, streaming the text as it is made
    gpt-scratch eval MODEL... TEXT         sliding-window perplexity and bits per byte, models side by side
    gpt-scratch info MODEL                 config, preset, exact parameter count, memory, files
    gpt-scratch convert SRC DST [...]      weights from transformers' GPT-2 or the book into our folder (and back)
    gpt-scratch push FOLDER REPO_ID [...]  publish a model folder to the Hugging Face Hub
    gpt-scratch serve MODEL [...]          an OpenAI-compatible HTTP server (transformers'), on 127.0.0.1

MODEL is a folder written by save_pretrained or `gpt-scratch train`, a transformers GPT-2 folder, a Hub id, or the
book's model.pth with --config. Exit status: 0 done, 2 a bad argument (one line says which), 1 a failure;
--verbose adds the traceback.
"""

import argparse
import logging
import sys
from collections.abc import Callable

_MODEL_HELP = ("a folder written by save_pretrained or `gpt-scratch train`, a transformers GPT-2 folder, a Hub id "
               "(e.g. openai-community/gpt2), or the book's .pth state dict (with --config)")
_BOOK_CONFIG_HELP = ("the book's .pth only: a preset (124M, 355M, 774M, 1558M, or gpt2, gpt2-medium, ...) or the "
                     "book's config dict as JSON (a string or a file)")


class _Parser(argparse.ArgumentParser):
    """argparse, with one line for a usage error (and where to read more) instead of the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, which wraps the description, keeping the examples' lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:\n"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _subparser(subparsers, name: str, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(name, help=help, description=description, epilog="examples:\n" + examples,
                                 formatter_class=_HelpFormatter)


def _number(kind: type, low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable:
    """An argparse type: `kind` (int or float) >= low (> low with `above`) and <= high."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if above else '>='} {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} must be <= {high}")
        return value

    return parse


_positive_int = _number(int, 1)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return name


# ----- demo --------------------------------------------------------------------------------------------------


def _add_demo(subparsers) -> None:
    from .demo import DEMO_STEPS

    parser = _subparser(
        subparsers, "demo",
        help="the whole path in about a minute, offline: train a small GPT, save, reload with Auto*, generate",
        description="Show the book's GPT_CONFIG_124M and GPT-2's presets with their exact parameter counts (built "
                    "on the meta device), train a small model of the same architecture on the book's "
                    "the-verdict.txt (shipped with the package) with the `gpt-scratch train` recipe, save it "
                    "(safetensors, tokenizer, model card, loss.png, metrics.json), reload it through "
                    "AutoModelForCausalLM/AutoTokenizer and generate with pipeline; then print a table of what "
                    "happened. About a minute on 2 CPU cores; nothing is downloaded.",
        examples="  gpt-scratch demo\n  gpt-scratch demo --out /tmp/demo --steps 300",
    )
    parser.add_argument("--out", default="gpt-scratch-demo", metavar="DIR",
                        help="where the trained model goes (default: gpt-scratch-demo; an earlier demo's output "
                             "there is replaced)")
    parser.add_argument("--steps", type=_positive_int, default=DEMO_STEPS,
                        help=f"training steps (default: {DEMO_STEPS})")
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    from .demo import format_report, run_demo

    print(format_report(run_demo(args.out, steps=args.steps)))
    return 0


# ----- train -------------------------------------------------------------------------------------------------


def _add_train(subparsers) -> None:
    parser = _subparser(
        subparsers, "train",
        help="train on a text file: the book's chapter-5 recipe on transformers' Trainer",
        description="Tokenize DATA (GPT-2's BPE, streamed: any size), split it 90/10 into training and validation "
                    "windows, and train with AdamW, gradient clipping and optional warmup + cosine decay, "
                    "evaluating both losses every --eval-steps steps with a greedy sample from the start context. "
                    "Writes OUT, whole when training ends: a folder AutoModelForCausalLM.from_pretrained loads "
                    "(safetensors, tokenizer, generation_config.json, a model card filled with the run), loss.png "
                    "and metrics.json. Trainer's checkpoints go to OUT-checkpoints (--resume continues from the "
                    "newest). The model: the book's GPT_CONFIG_124M with a 256-token context (its chapter 5) by "
                    "default, a GPT-2 --preset, the size flags, or --init MODEL to fine-tune. Several processes: "
                    "torchrun --nproc_per_node N -m gpt_scratch train ... (or accelerate launch), --batch-size per "
                    "process.",
        examples="  gpt-scratch train the-verdict.txt out                       # the book: 124M config, 10 epochs\n"
                 "  gpt-scratch train the-verdict.txt out --max-steps 30 --n-layers 4 --emb-dim 256 --n-heads 4\n"
                 "  gpt-scratch train the-verdict.txt out --max-steps 60 --resume  # continue the same run\n"
                 "  gpt-scratch train book.txt out --preset 124M --context-length 512 --schedule cosine "
                 "--warmup-steps 20\n"
                 "  gpt-scratch train book.txt out --init openai-community/gpt2 --lr 5e-5 --epochs 1\n"
                 "  torchrun --nproc_per_node 2 -m gpt_scratch train book.txt out --batch-size 4",
    )
    parser.add_argument("data", metavar="DATA", help="a UTF-8 text file")
    parser.add_argument("out", metavar="OUT", help="the folder for the trained model (refused if it exists, unless "
                                                   "--overwrite or --resume)")
    model = parser.add_argument_group("the model (default: the book's GPT_CONFIG_124M, context length 256)")
    model.add_argument("--preset", help="a GPT-2 size: gpt2/124M/117M, gpt2-medium/355M/345M, gpt2-large/774M/762M, "
                                        "gpt2-xl/1558M/1542M")
    model.add_argument("--init", metavar="MODEL", help="fine-tune this model instead: " + _MODEL_HELP)
    model.add_argument("--config", metavar="PRESET|JSON", help="with --init: " + _BOOK_CONFIG_HELP)
    model.add_argument("--n-layers", type=_positive_int, help="transformer blocks")
    model.add_argument("--emb-dim", type=_positive_int, help="embedding width (divisible by --n-heads)")
    model.add_argument("--n-heads", type=_positive_int, help="attention heads")
    model.add_argument("--drop-rate", type=_number(float, 0.0, 0.99), help="dropout (the book: 0.1)")
    model.add_argument("--qkv-bias", action=argparse.BooleanOptionalAction, help="query/key/value biases")
    model.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, dest="tie_word_embeddings",
                       help="share the output head with the token embedding, as GPT-2")
    model.add_argument("--context-length", type=_number(int, 2),
                       help="window length: the new model's context (default 256, or the preset's 1024), or with "
                            "--init the training window (default: the model's context)")
    run = parser.add_argument_group("training (defaults: the book's chapter 5)")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=_positive_int, help="optimizer steps (overrides --epochs)")
    length.add_argument("--epochs", type=_number(float, 0.0, above=True), default=10.0,
                        help="passes over the training windows (default: 10)")
    run.add_argument("--batch-size", type=_positive_int, default=2, help="windows per step and process (default: 2)")
    run.add_argument("--lr", type=_number(float, 0.0, above=True), default=4e-4, help="peak learning rate (4e-4)")
    run.add_argument("--weight-decay", type=_number(float, 0.0), default=0.1, help="AdamW weight decay (0.1)")
    run.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                     help="learning rate after warmup: constant (the book's ch. 5) or cosine decay to 0 (appendix D)")
    run.add_argument("--warmup-steps", type=_number(int, 0), default=0, help="linear warmup steps (default: 0)")
    run.add_argument("--max-grad-norm", type=_number(float, 0.0), default=1.0,
                     help="clip the gradient norm (default: 1.0; 0: off)")
    run.add_argument("--eval-steps", type=_positive_int, default=5, help="evaluate every N steps (default: 5)")
    run.add_argument("--eval-batches", type=_positive_int, default=5,
                     help="batches per split in each evaluation (default: 5, the book's eval_iter)")
    run.add_argument("--start-context", default="Every effort moves you",
                     help="the text each evaluation's sample continues (default: 'Every effort moves you')")
    run.add_argument("--sample-tokens", type=_positive_int, default=50,
                     help="tokens each evaluation's greedy sample adds (default: 50, as the book)")
    run.add_argument("--seed", type=int, default=123, help="initialisation, shuffling and dropout (default: 123)")
    run.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                     help="autocast dtype; weights and optimizer stay float32 (default: float32)")
    save = parser.add_argument_group("checkpoints")
    save.add_argument("--save-steps", type=_positive_int, default=50,
                      help="write a checkpoint every N steps, and at the end (default: 50; the last two are kept)")
    save.add_argument("--checkpoint-dir", metavar="DIR", help="where checkpoints go (default: OUT-checkpoints)")
    save.add_argument("--resume", action="store_true", help="continue from the newest checkpoint: the same loss "
                                                            "curve as a run never interrupted")
    save.add_argument("--overwrite", action="store_true", help="replace OUT and delete an earlier run's checkpoints")
    parser.set_defaults(func=train)


def train(args: argparse.Namespace) -> int:
    from .data import check_text_file
    from .models import check_model, context_length_of, model_config
    from .training import build_model
    from .training import train as run_training

    check_text_file(args.data)
    fields = {name: getattr(args, name) for name in ("n_layers", "emb_dim", "n_heads", "drop_rate", "qkv_bias",
                                                     "tie_word_embeddings")}
    if args.init is not None:
        context = context_length_of(model_config(args.init, args.config))  # checked before the weights are read
        if args.context_length is not None and context and args.context_length > context:
            raise ValueError(f"--context-length {args.context_length} is longer than {args.init}'s context "
                             f"({context} tokens)")
        model, tokenizer = build_model(init=args.init, book_config=args.config, seed=args.seed,
                                       **{k: v for k, v in fields.items() if v is not None}, preset=args.preset)
        window = args.context_length
    else:
        if args.config is not None:
            raise ValueError("--config describes the book's .pth given to --init; for a new model use --preset or "
                             "the size flags")
        model, tokenizer = build_model(preset=args.preset, seed=args.seed, context_length=args.context_length,
                                       **fields)
        window = None
    if _is_main_process():
        print(f"model: {model.num_parameters():,} parameters; " + ", ".join(
            f"{name}={getattr(model.config, name)}" for name in ("context_length", "emb_dim", "n_heads", "n_layers",
                                                                 "drop_rate", "qkv_bias", "tie_word_embeddings")))
    card_data = {"base_model": args.init} if args.init and check_model(args.init, args.config) == "hub" else None
    result = run_training(
        model, args.data, args.out, tokenizer=tokenizer, max_steps=args.max_steps, epochs=args.epochs,
        batch_size=args.batch_size, context_length=window, lr=args.lr, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup_steps=args.warmup_steps, max_grad_norm=args.max_grad_norm,
        eval_steps=args.eval_steps, eval_batches=args.eval_batches, save_steps=args.save_steps, seed=args.seed,
        dtype=args.dtype, start_context=args.start_context, sample_tokens=args.sample_tokens,
        checkpoint_dir=args.checkpoint_dir, resume=args.resume,
        overwrite=args.overwrite, card_data=card_data,
    )
    if _is_main_process():
        print(f"trained {result.steps} steps ({result.tokens_seen:,} tokens, {result.epochs:g} epochs) in "
              f"{result.seconds:.1f} s, {result.tokens_per_second:,.0f} tokens/s: training loss "
              f"{result.train_loss:.3f}, validation loss {result.validation_loss:.3f} (perplexity "
              f"{result.validation_perplexity:,.1f})")
        print(f"saved {result.out} (with loss.png and metrics.json); try: gpt-scratch generate {result.out} "
              f"\"Every effort moves you\"")
    return 0


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


# ----- generate ----------------------------------------------------------------------------------------------


def _add_generate(subparsers) -> None:
    parser = _subparser(
        subparsers, "generate",
        help="continue a prompt, streaming the text as it is made",
        description="Load MODEL and continue PROMPT with model.generate(), printing the text as it is made. "
                    "Greedy by default; --temperature, --top-k or --top-p sample. Several sequences "
                    "(--num-return-sequences) or beam search are printed when done.",
        examples='  gpt-scratch generate out "Every effort moves you"\n'
                 '  gpt-scratch generate openai-community/gpt2 "Hello, I am" --max-new-tokens 40 --temperature 0.8 '
                 '--top-k 40 --seed 0\n'
                 '  echo "Once upon a time" | gpt-scratch generate out - --num-beams 4\n'
                 '  gpt-scratch generate model.pth "Every effort moves you" --config 124M\n'
                 '  gpt-scratch generate out "Every effort moves you" --dtype bfloat16 --quantize int8',
    )
    parser.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    parser.add_argument("prompt", metavar="PROMPT", help="the text to continue; - reads it from stdin; empty "
                                                         "starts from <|endoftext|>")
    parser.add_argument("--config", metavar="PRESET|JSON", help=_BOOK_CONFIG_HELP)
    parser.add_argument("--max-new-tokens", type=_positive_int, default=50, help="tokens to add (default: 50)")
    parser.add_argument("--temperature", type=_number(float, 0.0),
                        help="sample at this temperature (0: greedy, the default)")
    parser.add_argument("--top-k", type=_number(int, 0), help="sample from the k likeliest tokens")
    parser.add_argument("--top-p", type=_number(float, 0.0, 1.0, above=True),
                        help="sample from the likeliest tokens whose probabilities sum to p (nucleus)")
    parser.add_argument("--repetition-penalty", type=_number(float, 0.0, above=True),
                        help="divide the scores of tokens already present (1: none; 1.2-1.3 curbs loops)")
    parser.add_argument("--num-beams", type=_positive_int, default=1, help="beam search with N beams")
    parser.add_argument("--num-return-sequences", type=_positive_int, default=1, help="sequences to make")
    parser.add_argument("--seed", type=int, help="seed the sampling, for repeatable samples")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="compute dtype (default: auto, the checkpoint's; bfloat16 with --quantize)")
    parser.add_argument("--quantize", choices=("int8",),
                        help="int8 weights (one scale per row), activations in --dtype: about 4x less to read per "
                             "token than float32 (gpt_scratch.quantize)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps (default: auto, a GPU if any)")
    parser.set_defaults(func=generate)


def generate(args: argparse.Namespace) -> int:
    from transformers import TextStreamer, set_seed

    from .models import (
        check_model,
        context_length_of,
        encode_prompt,
        generate_text,
        generation_options,
        load_model,
        load_tokenizer_for,
        model_config,
    )

    # From stdin, without the newline that `echo` and editors end the text with.
    prompt = sys.stdin.read().removesuffix("\n").removesuffix("\r") if args.prompt == "-" else args.prompt
    if check_model(args.model, args.config) != "book" and args.config is not None:
        raise ValueError(f"--config is for the book's .pth files; {args.model} has its own config.json")
    if args.temperature == 0 and (args.top_k is not None or args.top_p is not None):
        raise ValueError("--temperature 0 means greedy decoding, which --top-k and --top-p do not apply to")
    sampling = bool(args.temperature) or args.top_k is not None or args.top_p is not None
    options = generation_options(do_sample=sampling, temperature=args.temperature or 1.0, top_k=args.top_k,
                                 top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                                 num_beams=args.num_beams, num_return_sequences=args.num_return_sequences)
    # Everything about the arguments is checked from the config and tokenizer, before the weights are read.
    config = model_config(args.model, args.config)
    if args.quantize is not None and config.model_type not in ("gpt_scratch", "gpt2"):
        raise ValueError(f"--quantize takes gpt_scratch and GPT-2 models; {args.model} is a {config.model_type!r}")
    tokenizer = load_tokenizer_for(args.model, config)
    input_ids = encode_prompt(tokenizer, prompt, args.max_new_tokens, context_length_of(config))
    loaded = load_model(args.model, book_config=args.config, dtype=args.dtype, device=_device(args.device),
                        tokenizer=tokenizer, quantize=args.quantize)
    if args.seed is not None:
        set_seed(args.seed)
    one = args.num_beams == 1 and args.num_return_sequences == 1
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if one else None
    if one:
        print(prompt, end="", flush=True)
    texts = generate_text(loaded, input_ids, max_new_tokens=args.max_new_tokens, options=options, streamer=streamer)
    if not one:
        for i, text in enumerate(texts, start=1):
            print(f"[{i}] {prompt}{text}")
    return 0


# ----- eval --------------------------------------------------------------------------------------------------


def _add_eval(subparsers) -> None:
    parser = _subparser(
        subparsers, "eval",
        help="perplexity and bits per byte on a text file, several models side by side",
        description="Score TEXT with each MODEL: sliding windows of --context-length tokens every --stride tokens, "
                    "as transformers' perplexity guide computes it, each token scored once. <|endoftext|> goes in "
                    "front, so every token of the file is scored (--no-bos: the first token is context only). "
                    "Prints tokens, loss (nats per token), perplexity and bits per byte (comparable across "
                    "tokenizers); --json prints the same as JSON.",
        examples="  gpt-scratch eval out the-verdict.txt\n"
                 "  gpt-scratch eval out out-hf openai-community/gpt2 wiki.test.raw --stride 512\n"
                 "  gpt-scratch eval model.pth --config 124M book.txt --json",
    )
    parser.add_argument("models", metavar="MODEL", nargs="+", help=_MODEL_HELP)
    parser.add_argument("text", metavar="TEXT", help="a UTF-8 text file")
    parser.add_argument("--config", metavar="PRESET|JSON", help=_BOOK_CONFIG_HELP)
    parser.add_argument("--context-length", type=_number(int, 2), help="window length (default: each model's)")
    parser.add_argument("--stride", type=_positive_int, help="tokens between window starts (default: half the window)")
    parser.add_argument("--batch-size", type=_positive_int, default=4, help="windows per forward pass (default: 4)")
    parser.add_argument("--no-bos", dest="bos", action="store_false",
                        help="do not put <|endoftext|> in front (the perplexity guide's way)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="float32",
                        help="compute dtype (default: float32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps (default: auto, a GPU if any)")
    parser.add_argument("--json", action="store_true", help="print JSON: one object per model")
    parser.set_defaults(func=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    import json

    from .data import check_text_file
    from .evaluation import evaluate_text
    from .models import context_length_of, load_model, model_config

    check_text_file(args.text)
    for model in args.models:  # every argument checked, from the configs, before the first weights are read
        context = context_length_of(model_config(model, args.config))
        if args.context_length is not None and context and args.context_length > context:
            raise ValueError(f"--context-length {args.context_length} is longer than {model}'s context "
                             f"({context} tokens)")
        window = args.context_length or context
        if args.stride is not None and window and args.stride > window:
            raise ValueError(f"--stride {args.stride} is longer than the {window}-token window of {model}")
    rows = []
    for model in args.models:
        loaded = load_model(model, book_config=args.config, dtype=args.dtype, device=_device(args.device))
        result = evaluate_text(loaded, args.text, context_length=args.context_length, stride=args.stride,
                               batch_size=args.batch_size, prepend_bos=args.bos, progress=not args.json)
        rows.append({"model": model, **result.as_dict()})
        del loaded
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len("model"), *(len(row["model"]) for row in rows))
    print(f"{'model':<{width}}  {'tokens':>10}  {'loss':>7}  {'perplexity':>11}  {'bits/byte':>9}  "
          f"{'window/stride':>13}  {'seconds':>7}")
    for row in rows:
        bpb = f"{row['bits_per_byte']:.4f}" if row["bits_per_byte"] is not None else "-"
        print(f"{row['model']:<{width}}  {row['tokens']:>10,}  {row['loss']:>7.4f}  {row['perplexity']:>11,.3f}  "
              f"{bpb:>9}  {row['context_length']:>6}/{row['stride']:<6}  {row['seconds']:>7.1f}")
    return 0


# ----- info --------------------------------------------------------------------------------------------------


def _add_info(subparsers) -> None:
    parser = _subparser(
        subparsers, "info",
        help="config, preset, exact parameter count, memory per dtype, files, transformers version needed",
        description="Describe MODEL from its config and files, without loading the weights (for a Hub id, only "
                    "config.json and the file list are fetched).",
        examples="  gpt-scratch info out\n  gpt-scratch info openai-community/gpt2-xl\n"
                 "  gpt-scratch info model.pth --config 124M --json",
    )
    parser.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    parser.add_argument("--config", metavar="PRESET|JSON", help=_BOOK_CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=info)


def info(args: argparse.Namespace) -> int:
    import json

    import torch

    from .models import check_model, describe_model

    if check_model(args.model, args.config) != "book" and args.config is not None:
        raise ValueError(f"--config is for the book's .pth files; {args.model} has its own config.json")
    described = describe_model(args.model, args.config)
    config = described.config
    fields = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias",
              "tie_word_embeddings")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    kv = described.kv_cache_values_per_token
    data = {
        "model": described.name, "format": described.format, "preset": described.preset,
        "config": {name: getattr(config, name) for name in fields},
        "parameters": described.parameters, "stored_dtype": described.dtype,
        "weight_bytes": {name: described.weight_bytes(dtype) for name, dtype in dtypes.items()},
        "kv_cache_bytes_per_token": {name: kv * dtype.itemsize for name, dtype in dtypes.items()},
        "files": dict(described.files), "requires": described.requirement, "saved_with_transformers":
        described.saved_with,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        ("model", f"{described.name} ({described.format})"),
        ("preset", described.preset or "none (a custom configuration)"),
        ("config", ", ".join(f"{name}={value}" for name, value in data["config"].items())),
        ("parameters", f"{described.parameters:,}" + (" (output head tied to the token embedding, counted once)"
                                                     if config.tie_word_embeddings else "")),
        ("weights", ", ".join(f"{_size(n)} in {name}" for name, n in data["weight_bytes"].items())
         + (f"; stored as {described.dtype}" if described.dtype else "")),
        ("KV cache", f"{kv:,} values per token: " + ", ".join(
            f"{_size(n)} in {name}" for name, n in data["kv_cache_bytes_per_token"].items())
         + f"; {_size(kv * 2 * config.context_length)} for a full {config.context_length}-token context in bfloat16"),
        ("files", ", ".join(f"{name} {_size(n)}" for name, n in described.files) or "-"),
        ("requires", described.requirement + (f" (saved with transformers {described.saved_with})"
                                              if described.saved_with else "")),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _size(n: int) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


# ----- convert -----------------------------------------------------------------------------------------


def _add_convert(subparsers) -> None:
    parser = _subparser(
        subparsers, "convert",
        help="convert weights between transformers' GPT-2, the book's GPTModel and gpt_scratch",
        examples="  gpt-scratch convert openai-community/gpt2-xl gpt2-xl-scratch\n"
                 "  gpt-scratch convert model.pth my-gpt --config 124M\n"
                 "  gpt-scratch convert my-gpt my-gpt-hf --to hf-gpt2 --dtype bfloat16 --max-shard-size 2GB\n"
                 "  gpt-scratch convert my-gpt my-gpt-book --to book\n"
                 "  gpt-scratch convert my-gpt my-gpt.gguf --to gguf --dtype q8_0",
        description="Convert a checkpoint one tensor at a time (memory stays near the largest tensor, whatever the "
                    "model's size). SRC: a transformers GPT-2 folder or Hub id (e.g. openai-community/gpt2-xl), the "
                    "book's state dict (torch.save(model.state_dict(), 'model.pth'); read with "
                    "torch.load(weights_only=True), which never runs pickled code) with --config, or a gpt_scratch "
                    "folder. DST: a folder, written beside itself and renamed into place when complete: "
                    "--to scratch gives what save_pretrained writes (safetensors, config.json, generation_config.json, "
                    "the code for trust_remote_code), --to hf-gpt2 a folder GPT2LMHeadModel.from_pretrained loads, "
                    "--to book model.pth + config.json (the book's config dict); --to gguf one .gguf file for "
                    "llama.cpp (its gpt2 architecture, GPT-2's tokenizer).",
    )
    parser.add_argument("src", metavar="SRC", help="a GPT-2 folder or Hub id, the book's .pth, or a gpt_scratch folder")
    parser.add_argument("dst", metavar="DST", help="the output folder (refused if it exists, unless --overwrite)")
    parser.add_argument("--from", dest="src_format", choices=("auto", "hf-gpt2", "book", "scratch"), default="auto",
                        help="SRC's format (default: auto: a file is the book's; a folder or Hub repo by its "
                             "config.json)")
    parser.add_argument("--to", dest="dst_format", choices=("scratch", "hf-gpt2", "book", "gguf"), default="scratch",
                        help="DST's format (default: scratch)")
    parser.add_argument("--config", metavar="PRESET|JSON",
                        help="the book's format only: a preset (gpt2/124M, gpt2-medium/355M, gpt2-large/774M, "
                             "gpt2-xl/1558M: GPT-2's sizes, drop_rate 0.1; context length and qkv bias are read from "
                             "the weights) or the book's config dict as JSON (a file or a string)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16", "f32", "f16", "bf16", "q8_0"),
                        default="auto", help="the weights' dtype in DST (default: auto, SRC's); --to gguf also takes "
                                             "llama.cpp's names, and q8_0 (8-bit blocks)")
    parser.add_argument("--max-shard-size", default="50GB", metavar="SIZE",
                        help="largest safetensors file, e.g. 2GB or 500MB; bigger models are split into "
                             "model-0000k-of-0000n.safetensors + model.safetensors.index.json (default: 50GB, as "
                             "save_pretrained)")
    parser.add_argument("--revision", help="a Hub SRC's branch, tag or commit (default: main)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.set_defaults(func=convert)


def convert(args: argparse.Namespace) -> int:
    """Convert SRC to DST; prints what was written."""
    from .checkpoint import convert_checkpoint

    download = {"revision": args.revision} if args.revision else {}
    result = convert_checkpoint(args.src, args.dst, src_format=args.src_format, dst_format=args.dst_format,
                                book_config_spec=args.config, dtype=args.dtype, max_shard_size=args.max_shard_size,
                                overwrite=args.overwrite, download=download)
    print(f"converted {args.src} ({result.source_format}) to {result.path} ({result.target_format}): "
          f"{result.tensors} tensors, {result.bytes:,} bytes in {', '.join(result.files)}")
    return 0


# ----- export ------------------------------------------------------------------------------------------------


def _add_export(subparsers) -> None:
    parser = _subparser(
        subparsers, "export",
        help="export a model for another runtime (ONNX Runtime)",
        examples="  gpt-scratch export onnx out/model out/model-onnx\n"
                 "  gpt-scratch export onnx openai-community/gpt2 gpt2-onnx",
        description="Export MODEL (a gpt_scratch or GPT-2 folder, or a Hub id) with torch's dynamo exporter into the "
                    "folder OUT: model.onnx (one graph, with and without past keys/values: a past of length 0 for "
                    "the first step), config.json, generation_config.json and the tokenizer. Batch, sequence and "
                    "past lengths are dynamic. Needs pip install 'gpt-scratch[onnx]' (onnxscript, onnxruntime).",
    )
    parser.add_argument("format", choices=("onnx",), help="the target format")
    parser.add_argument("model", metavar="MODEL", help="a model folder or Hub id")
    parser.add_argument("out", metavar="OUT", help="the output folder (refused if it exists, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    """Export MODEL to OUT; prints the file written."""
    from .onnx_export import export_onnx

    path = export_onnx(args.model, args.out, overwrite=args.overwrite)
    print(f"exported {args.model} to {path} ({path.stat().st_size:,} bytes)")
    return 0


# ----- push ----------------------------------------------------------------------------------------------


def _add_push(subparsers) -> None:
    parser = _subparser(
        subparsers, "push",
        help="publish a model folder to the Hugging Face Hub",
        examples="  gpt-scratch push out your-name/my-gpt --private\n"
                 "  gpt-scratch push out your-name/my-gpt --card-data '{\"license\": \"mit\"}' --create-pr",
        description="Publish a folder written by save_pretrained (weights, config, code, tokenizer and a generated "
                    "model card) to the Hugging Face Hub in one commit, loadable with AutoModelForCausalLM."
                    "from_pretrained(REPO_ID, trust_remote_code=True) and AutoTokenizer.from_pretrained(REPO_ID). "
                    "The token comes from --token, else HF_TOKEN, else the saved login (`hf auth login`).",
    )
    parser.add_argument("folder", metavar="FOLDER", help="a gpt_scratch model folder (config.json + safetensors)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="'namespace/name', or 'name' for your own account")
    parser.add_argument("--private", action="store_true", help="create the repo private (ignored if it exists)")
    parser.add_argument("--token", help="a Hub token with write access; prefer HF_TOKEN or `hf auth login`: a token "
                                        "on the command line is visible in the shell history and the process list")
    parser.add_argument("--revision", help="branch to commit to (created from main if missing; default: main)")
    parser.add_argument("--commit-message", help="the commit's title")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="folder of tokenizer files to publish (default: the model folder's, else GPT-2's)")
    parser.add_argument("--card-data", metavar="JSON",
                        help='extra model card metadata: a JSON object or the path of a .json file, e.g. '
                             '\'{"license": "mit", "datasets": ["karpathy/tiny_shakespeare"], '
                             '"training_results": {"steps": 600, "val_loss": 3.9}}\'')
    parser.set_defaults(func=push)


def push(args: argparse.Namespace) -> int:
    """Publish FOLDER to REPO_ID; prints the commit (or pull request) URL."""
    import json
    from pathlib import Path

    from .hub import HubPushError, push_to_hub

    card_data = None
    if args.card_data is not None:
        text = args.card_data
        if not text.lstrip().startswith("{") and Path(text).is_file():
            text = Path(text).read_text(encoding="utf-8")
        try:
            card_data = json.loads(text)
        except ValueError as err:
            raise ValueError(f"--card-data is neither a JSON object nor a JSON file: {err}") from None
        if not isinstance(card_data, dict):
            raise ValueError(f"--card-data must be a JSON object, got {type(card_data).__name__}")
    try:
        info = push_to_hub(args.folder, args.repo_id, tokenizer=args.tokenizer, private=args.private,
                           token=args.token, revision=args.revision, commit_message=args.commit_message,
                           create_pr=args.create_pr, card_data=card_data)
    except HubPushError as err:  # the others are caught by main()
        print(f"gpt-scratch push: error: {err}", file=sys.stderr)
        return 1
    print(f"published {args.folder} to {info.repo_url.repo_id}: {info.pr_url or info.commit_url}")
    return 0


# ----- serve ---------------------------------------------------------------------------------------------


def _add_serve(subparsers) -> None:
    parser = _subparser(
        subparsers, "serve",
        help="serve a model with transformers' OpenAI-compatible server (/v1/completions, /v1/chat/completions)",
        examples="  gpt-scratch serve out\n"
                 "  gpt-scratch serve out --port 8080 --continuous-batching\n"
                 "  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' "
                 "-d '{\"model\": \"out\", \"prompt\": \"Every effort moves you\", \"max_tokens\": 20}'",
        description="Run transformers' own server (`transformers serve`, which cannot load custom code by itself) "
                    "on MODEL, with gpt_scratch's classes registered: /v1/completions, /v1/chat/completions (for "
                    "a tokenizer with a chat template), /v1/models, /health. It has no authentication, so it "
                    "listens on 127.0.0.1 unless --host says otherwise. Needs pip install 'gpt-scratch[serve]'.",
    )
    parser.add_argument("model", metavar="MODEL", help="a folder written by save_pretrained, with a tokenizer, or a "
                                                       "Hub id")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                                                            "only; 0.0.0.0 is every network)")
    parser.add_argument("--port", type=_number(int, 1, 65535), default=8000, help="port (default: 8000)")
    parser.add_argument("--continuous-batching", action="store_true",
                        help="batch requests as they arrive, with a paged KV cache (on a CPU: sdpa or eager)")
    parser.add_argument("--cb-num-blocks", type=_positive_int, metavar="N",
                        help="continuous batching's cache: N blocks of 256 tokens for every layer (default: 90%% of "
                             "the device's free memory, on a CPU of the RAM)")
    parser.add_argument("--cb-max-batch-tokens", type=_positive_int, metavar="N",
                        help="continuous batching: at most N tokens in one forward pass (default: inferred)")
    parser.add_argument("--attn-implementation", choices=("eager", "sdpa", "flash_attention_2", "flash_attention_3"),
                        help="attention kernel (default: sdpa)")
    parser.add_argument("--device", default="auto", help="where the model runs: auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="the weights' dtype (default: auto, as saved)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning",
                        help="the server's log level (default: warning)")
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    """Serve MODEL until interrupted."""
    from .serving import serve

    print(f"serving {args.model} on http://{args.host}:{args.port}/v1 (Ctrl-C stops)", flush=True)
    serve(args.model, host=args.host, port=args.port, continuous_batching=args.continuous_batching,
          cb_num_blocks=args.cb_num_blocks, cb_max_batch_tokens=args.cb_max_batch_tokens,
          attn_implementation=args.attn_implementation, device=args.device, dtype=args.dtype,
          log_level=args.log_level)
    return 0


# ----- entry point -----------------------------------------------------------------------------------------


class _Version(argparse.Action):
    """--version, with the versions of transformers and torch it runs on (read without importing them)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        from . import __version__

        def installed(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        print(f"gpt-scratch {__version__} (transformers {installed('transformers')}, torch {installed('torch')}, "
              f"Python {sys.version.split()[0]})")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gpt-scratch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, help="print the versions and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level; errors show the traceback")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_demo, _add_train, _add_generate, _add_eval, _add_info, _add_convert, _add_export, _add_push,
                _add_serve):
        add(subparsers)
    return parser


# Exceptions that mean a bad argument (exit 2) in the commands that read files and settings; convert and push
# report every error as a failure (exit 1), as they always have.
_USAGE_ERRORS: dict[str, tuple[type[BaseException], ...]] = {
    name: (ValueError, TypeError, FileNotFoundError) for name in ("demo", "train", "generate", "eval", "info")
}


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; returns the process exit code: 0 done, 2 a bad argument, 1 a failure (one line on stderr
    says which; --verbose adds the traceback)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error argparse has printed
        return exit.code if isinstance(exit.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"gpt-scratch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`gpt-scratch info MODEL | head`): nothing left to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as err:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"gpt-scratch {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, _USAGE_ERRORS.get(args.command, ())) else 1


def _one_line(err: BaseException) -> str:
    message = " ".join(str(err).split())
    plain = (ValueError, TypeError, OSError, RuntimeError)
    if isinstance(err, plain) and message:
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
