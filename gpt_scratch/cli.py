"""The `gpt-scratch` command line: one plain function per subcommand, heavy imports inside each.

    gpt-scratch convert SRC DST [...]      weights from transformers' GPT-2 or the book into our folder (and back)
    gpt-scratch push FOLDER REPO_ID [...]  publish a model folder to the Hugging Face Hub
"""

import argparse
import logging
import sys

# ----- convert -----------------------------------------------------------------------------------------


def _add_convert(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert weights between transformers' GPT-2, the book's GPTModel and gpt_scratch",
        description="Convert a checkpoint one tensor at a time (memory stays near the largest tensor, whatever the "
                    "model's size). SRC: a transformers GPT-2 folder or Hub id (e.g. openai-community/gpt2-xl), the "
                    "book's state dict (torch.save(model.state_dict(), 'model.pth'); read with "
                    "torch.load(weights_only=True), which never runs pickled code) with --config, or a gpt_scratch "
                    "folder. DST: a folder, written beside itself and renamed into place when complete: "
                    "--to scratch gives what save_pretrained writes (safetensors, config.json, generation_config.json, "
                    "the code for trust_remote_code), --to hf-gpt2 a folder GPT2LMHeadModel.from_pretrained loads, "
                    "--to book model.pth + config.json (the book's config dict).",
    )
    parser.add_argument("src", metavar="SRC", help="a GPT-2 folder or Hub id, the book's .pth, or a gpt_scratch folder")
    parser.add_argument("dst", metavar="DST", help="the output folder (refused if it exists, unless --overwrite)")
    parser.add_argument("--from", dest="src_format", choices=("auto", "hf-gpt2", "book", "scratch"), default="auto",
                        help="SRC's format (default: auto: a file is the book's; a folder or Hub repo by its "
                             "config.json)")
    parser.add_argument("--to", dest="dst_format", choices=("scratch", "hf-gpt2", "book"), default="scratch",
                        help="DST's format (default: scratch)")
    parser.add_argument("--config", metavar="PRESET|JSON",
                        help="the book's format only: a preset (gpt2/124M, gpt2-medium/355M, gpt2-large/774M, "
                             "gpt2-xl/1558M: GPT-2's sizes, drop_rate 0.1; context length and qkv bias are read from "
                             "the weights) or the book's config dict as JSON (a file or a string)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="the weights' dtype in DST (default: auto, SRC's)")
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


# ----- push ----------------------------------------------------------------------------------------------


def _add_push(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="publish a model folder to the Hugging Face Hub",
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


# ----- entry point -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt-scratch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_convert(subparsers)
    _add_push(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; returns the process exit code (errors print one line to stderr and give 1)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"gpt-scratch {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
