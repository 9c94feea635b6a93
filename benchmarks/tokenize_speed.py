"""Tokens per second: our streamed tiktoken path against transformers' tokenizers, same text, same run.

    python benchmarks/tokenize_speed.py                 # ../shared's tinyshakespeare.txt, else the-verdict.txt
    python benchmarks/tokenize_speed.py --text big.txt --repeat 5

All methods must produce identical ids (checked); the table gives the best of --repeat runs.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"


def best_time(fn, repeat: int) -> tuple[float, list[int]]:
    best, ids = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        ids = fn()
        best = min(best, time.perf_counter() - start)
    return best, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, default=None,
                        help="a UTF-8 text file (default: ../shared's tinyshakespeare.txt where it exists, else the "
                             "shipped the-verdict.txt)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from transformers import GPT2Tokenizer

    from gpt_scratch import load_tokenizer, tokenize_file
    from gpt_scratch.data import THE_VERDICT
    from gpt_scratch.tokenization_gpt_scratch import load_tiktoken_encoding, write_gpt2_vocab_files

    if args.text is None:
        args.text = SHAKESPEARE if SHAKESPEARE.is_file() else THE_VERDICT

    text = args.text.read_text(encoding="utf-8")
    ours_hf = load_tokenizer()
    with tempfile.TemporaryDirectory() as folder:  # OpenAI's files under the names transformers loads
        write_gpt2_vocab_files(folder)
        gpt2_tokenizer = GPT2Tokenizer.from_pretrained(folder, model_max_length=10**9)
    ours_hf.model_max_length = 10**9  # whole-corpus encoding here, not model input: no length warning
    encoding = load_tiktoken_encoding()
    methods = {
        "gpt_scratch.tokenize_file (tiktoken, streamed)": lambda: tokenize_file(args.text, progress=False).tolist(),
        "tiktoken encode, whole text": lambda: encoding.encode(text, allowed_special={"<|endoftext|>"}),
        "gpt_scratch.load_tokenizer() (tokenizers backend)": lambda: ours_hf(text)["input_ids"],
        "transformers GPT2Tokenizer (reference)": lambda: gpt2_tokenizer(text)["input_ids"],
    }
    results = {name: best_time(fn, args.repeat) for name, fn in methods.items()}
    reference_ids = results["transformers GPT2Tokenizer (reference)"][1]
    reference_time = results["transformers GPT2Tokenizer (reference)"][0]
    print(f"{args.text.name}: {len(text):,} characters, {len(reference_ids):,} tokens, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeat}\n")
    print(f"| {'method':<50} | {'seconds':>8} | {'tokens/s':>12} | {'vs GPT2Tokenizer':>16} | same ids |")
    print(f"|{'-' * 52}|{'-' * 10}|{'-' * 14}|{'-' * 18}|----------|")
    for name, (seconds, ids) in results.items():
        print(f"| {name:<50} | {seconds:>8.3f} | {len(ids) / seconds:>12,.0f} | {reference_time / seconds:>15.2f}x "
              f"| {'yes' if ids == reference_ids else 'NO':>8} |")


if __name__ == "__main__":
    main()
