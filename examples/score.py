"""Per-text log-likelihood and perplexity, batched and padding-aware.

    python examples/score.py                          # the model `gpt-scratch demo` writes
    python examples/score.py --model my-gpt "some text" "another text"
"""

import argparse
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from gpt_scratch import score_texts

TEXTS = [
    "I HAD always thought Jack Gisburn rather a cheap genius",
    "genius cheap a rather Gisburn Jack thought always HAD I",
    "The quick brown fox jumps over the lazy dog.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("gpt-scratch-demo"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("texts", nargs="*", default=TEXTS)
    args = parser.parse_args()
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} is not a saved model folder; run `gpt-scratch demo` or pass --model")

    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    scores = score_texts(model, tokenizer, args.texts, batch_size=args.batch_size)
    print(f"| {'perplexity':>10} | {'log-likelihood':>14} | {'tokens':>6} | text")
    print(f"|{'-' * 12}|{'-' * 16}|{'-' * 8}|------")
    for text, score in zip(args.texts, scores):
        print(f"| {score.perplexity:>10.1f} | {score.log_likelihood:>14.2f} | {score.num_tokens:>6} | {text}")


if __name__ == "__main__":
    main()
