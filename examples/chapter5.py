"""The book's chapter-5 experiment with gpt_scratch's model in place of `GPTModel`: the same loop
(`train_model_simple`, `evaluate_model`, `generate_and_print_sample`, `plot_losses`), the same data split and
settings, written out in plain PyTorch. `gpt-scratch train` runs the same recipe on transformers' Trainer.

    python examples/chapter5.py                         # the-verdict.txt, GPT_CONFIG_124M (context 256), 10 epochs
    python examples/chapter5.py my.txt --epochs 2 --n-layers 4 --emb-dim 256 --n-heads 4 --out my-gpt

About five minutes on a laptop's CPU for the book's settings (the book reports the same). Writes the model to
--out (loadable with AutoModelForCausalLM) and the book's loss plot beside it (<out>-loss.png).
"""

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, TokenWindowDataset, load_tokenizer, tokenize_file
from gpt_scratch.data import THE_VERDICT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", type=Path, default=THE_VERDICT,
                        help="a UTF-8 text file (default: the book's the-verdict.txt, shipped with gpt_scratch)")
    parser.add_argument("--out", type=Path, default=Path("out/chapter5"), help="where the trained model goes")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (default: all the epochs)")
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--emb-dim", type=int, default=768)
    parser.add_argument("--n-layers", type=int, default=12)
    parser.add_argument("--n-heads", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--eval-freq", type=int, default=5)
    parser.add_argument("--eval-iter", type=int, default=5)
    args = parser.parse_args()
    if not args.text.is_file():
        parser.error(f"{args.text} not found: pass a text file")
    return args


def calc_loss_batch(input_batch, model, device):
    input_batch = input_batch.to(device)
    return model(input_batch, labels=input_batch).loss  # the model shifts the labels by one position


def calc_loss_loader(data_loader, model, device, num_batches=None):
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total = 0.0
    for i, batch in enumerate(data_loader):
        if i >= num_batches:
            break
        total += calc_loss_batch(batch["input_ids"], model, device).item()
    return total / num_batches


def evaluate_model(model, train_loader, val_loader, device, eval_iter):
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, device, start_context):
    model.eval()
    ids = tokenizer(start_context, return_tensors="pt")["input_ids"].to(device)
    with torch.no_grad():  # the book's generate_text_simple is greedy decoding: generate() does it with a KV cache
        out = model.generate(ids, max_new_tokens=50, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    print(tokenizer.decode(out[0]).replace("\n", " "))
    model.train()


def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq, eval_iter,
                       start_context, tokenizer, max_steps=None):
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(batch["input_ids"], model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += batch["input_ids"].numel()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
            if max_steps is not None and global_step + 1 >= max_steps:
                break
        generate_and_print_sample(model, tokenizer, device, start_context)
        if max_steps is not None and global_step + 1 >= max_steps:
            break
    return train_losses, val_losses, track_tokens_seen


def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_losses, label="Training loss")
    ax1.plot(epochs_seen, val_losses, linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax2 = ax1.twiny()  # a second x-axis for tokens seen
    ax2.plot(tokens_seen, train_losses, alpha=0)  # invisible, aligns the ticks
    ax2.set_xlabel("Tokens seen")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    torch.manual_seed(123)
    config = GPTScratchConfig(vocab_size=50257, context_length=args.context_length, emb_dim=args.emb_dim,
                              n_heads=args.n_heads, n_layers=args.n_layers, drop_rate=0.1, qkv_bias=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = GPTScratchForCausalLM(config).to(device)
    tokenizer = load_tokenizer(model_max_length=config.context_length)

    # The book splits the text 90/10 and cuts both parts into windows of context_length tokens (stride as long).
    ids = tokenize_file(args.text)
    split = int(0.9 * len(ids))
    train_set = TokenWindowDataset(ids[:split], config.context_length)
    val_set = TokenWindowDataset(ids[split:], config.context_length)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val_set, batch_size=args.batch_size, shuffle=False, drop_last=False)
    print(f"{args.text.name}: {len(ids):,} tokens; {len(train_loader)} training batches, {len(val_loader)} "
          f"validation batches; {model.num_parameters():,} parameters")

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs=args.epochs, eval_freq=args.eval_freq,
        eval_iter=args.eval_iter, start_context="Every effort moves you", tokenizer=tokenizer,
        max_steps=args.max_steps)

    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    plot = args.out.with_name(f"{args.out.name}-loss.png")
    tokens_per_epoch = len(train_loader) * args.batch_size * config.context_length
    epochs_seen = [tokens / tokens_per_epoch for tokens in tokens_seen]
    plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, plot)
    print(f"saved the model to {args.out} and the loss plot to {plot}")


if __name__ == "__main__":
    main()
