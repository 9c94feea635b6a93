"""The main job, end to end: build a small GPT, train it briefly on the book's text, save it with its
tokenizer, reload both through transformers' Auto classes and generate with `pipeline`.

    python examples/quickstart.py                      # about a minute on 2 CPU cores
    python examples/quickstart.py --steps 600 --out my-gpt --text some.txt
"""

import argparse
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, load_tokenizer
from gpt_scratch.data import THE_VERDICT

DEFAULT_TEXT = THE_VERDICT  # the book's training text, shipped with gpt_scratch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="plain-text training file")
    parser.add_argument("--out", type=Path, default=Path("out/quickstart"), help="where to save the model")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--prompt", default="Every effort moves you")
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(f"training text {args.text} not found; pass --text PATH to a plain-text file")
    if args.steps < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    return args


def plot_losses(losses: list[float], path: Path) -> None:
    """Training loss per step, with a moving average, as a PNG (needs matplotlib: pip install matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(pip install matplotlib to get a plot of the training loss)")
        return
    window = max(1, len(losses) // 10)
    smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
              for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(range(1, len(losses) + 1), losses, alpha=0.35, label="loss per step")
    ax.plot(range(1, len(losses) + 1), smooth, label=f"moving average ({window} steps)")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title="quickstart: training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"training loss plot: {path}")


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)

    # A small GPT with GPT-2's vocabulary, so the real tokenizer works unchanged.
    config = GPTScratchConfig(context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.1,
                              qkv_bias=False, tie_word_embeddings=True)
    model = GPTScratchForCausalLM(config)
    tokenizer = load_tokenizer(model_max_length=config.context_length)
    print(f"model: {model.num_parameters():,} parameters; config: {config.to_diff_dict()}")

    ids = torch.tensor(tokenizer(args.text.read_text(encoding="utf-8"))["input_ids"])
    window = config.context_length
    print(f"training text: {args.text.name}, {len(ids):,} tokens")

    # The book's ch. 5 recipe in miniature: random windows, next-token loss, AdamW.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    model.train()
    start = time.perf_counter()
    losses = []
    progress = tqdm(range(args.steps), desc="training", unit="step")
    for _ in progress:
        starts = torch.randint(0, len(ids) - window - 1, (4,))
        batch = torch.stack([ids[s:s + window] for s in starts.tolist()])
        loss = model(batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.3f}", ppl=f"{math.exp(loss.item()):.1f}")
    if args.steps:
        print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f}s, last loss {loss.item():.3f}")

    model.eval()
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"saved to {args.out}: {', '.join(sorted(p.name for p in args.out.iterdir()))}")
    if losses:
        plot_losses(losses, args.out.with_name(f"{args.out.name}-loss.png"))

    # Anyone can now load the folder with the Auto classes (trust_remote_code=True where gpt_scratch is
    # not installed: the modeling code travels with the weights).
    reloaded = AutoModelForCausalLM.from_pretrained(args.out)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(args.out)
    generator = pipeline("text-generation", model=reloaded, tokenizer=reloaded_tokenizer)
    # Greedy, with a repetition penalty and no repeated word pairs: a model this small and this briefly trained
    # loops on its most frequent token otherwise.
    result = generator(args.prompt, max_new_tokens=30, do_sample=False, repetition_penalty=1.3, no_repeat_ngram_size=2)
    print(f"\n{result[0]['generated_text']}")


if __name__ == "__main__":
    main()
