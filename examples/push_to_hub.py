"""Publish a trained model on the Hugging Face Hub with its loss in the model card, so that anyone can run
`AutoModelForCausalLM.from_pretrained(REPO_ID, trust_remote_code=True)`.

    hf auth login                                              # once; or export HF_TOKEN=hf_... (a write token)
    gpt-scratch demo                                           # train and save a small model (gpt-scratch-demo)
    python examples/push_to_hub.py gpt-scratch-demo your-name/my-gpt --private

This talks to the real Hub (or to HF_ENDPOINT): it creates the repo if needed and uploads the weights, code,
tokenizer and a model card in one commit. Without a token it stops before any upload.
"""

import argparse
import math
from pathlib import Path

import torch
from transformers import AutoTokenizer

from gpt_scratch import GPTScratchForCausalLM
from gpt_scratch.data import THE_VERDICT
from gpt_scratch.hub import push_to_hub

DEFAULT_TEXT = THE_VERDICT  # the book's training text, shipped with gpt_scratch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a model folder written by save_pretrained (with its tokenizer)")
    parser.add_argument("repo_id", help="'your-name/model-name' on the Hub")
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="the training text, to report the loss on")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    args = parser.parse_args()
    if not (args.folder / "config.json").is_file():
        parser.error(f"{args.folder} is not a saved model folder (no config.json); run `gpt-scratch demo` first")
    if not args.text.is_file():
        parser.error(f"text {args.text} not found; pass --text PATH to the training text")
    return args


@torch.no_grad()
def mean_loss(model: GPTScratchForCausalLM, ids: torch.Tensor) -> float:
    """Mean next-token cross-entropy over consecutive context-length windows of `ids` (the model shifts labels)."""
    window = model.config.context_length
    windows = [ids[start:start + window][None] for start in range(0, len(ids) - 1, window)]
    return torch.stack([model(w, labels=w).loss for w in windows if w.shape[1] > 1]).mean().item()


def main() -> None:
    args = parse_args()
    model = GPTScratchForCausalLM.from_pretrained(args.folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    # The whole text at once (longer than the context: mean_loss windows it), hence no length warning.
    ids = torch.tensor(tokenizer(args.text.read_text(encoding="utf-8"), verbose=False)["input_ids"])
    loss = mean_loss(model, ids)
    print(f"{args.folder}: {model.num_parameters():,} parameters, loss {loss:.3f} on {args.text.name}")

    info = push_to_hub(
        model,
        args.repo_id,
        tokenizer=tokenizer,
        private=args.private,
        create_pr=args.create_pr,
        card_data={
            "language": "en",
            "training_results": {
                "training text": args.text.name,
                "tokens": f"{len(ids):,}",
                "loss": round(loss, 4),
                "perplexity": round(math.exp(loss), 2),
            },
        },
    )
    repo_id = info.repo_url.repo_id
    print(f"published: {info.pr_url or info.commit_url}")
    print(f'load it: AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)')


if __name__ == "__main__":
    main()
