"""What int8 weights cost in perplexity: a GPT trained on the book's the-verdict.txt, before and after `quantize`.

    python benchmarks/int8_perplexity.py                      # 6 layers x 384, 300 AdamW steps (a few minutes)
    python benchmarks/int8_perplexity.py --steps 20 --n-layers 2 --emb-dim 64      # the smoke test's size

No pretrained weights here: the model is trained from scratch on the first 90% of the-verdict.txt (the book's chapter 5
split) until it fits the text well, then scored by sliding-window perplexity (gpt_scratch.evaluation) on the training
part and on the held-out 10%, in fp32, in bf16, and with int8 weights and bf16 activations (`gpt_scratch.quantize`),
and, after a save_pretrained / from_pretrained round trip, the int8 model again (it must score the same).
"""

import argparse
import copy
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n-layers", type=int, default=6)
    parser.add_argument("--emb-dim", type=int, default=384)
    parser.add_argument("--n-heads", type=int, default=6)
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, quantize, tokenize_file
    from gpt_scratch.data import THE_VERDICT
    from gpt_scratch.evaluation import sliding_window_perplexity

    torch.manual_seed(123)
    ids = tokenize_file(THE_VERDICT, progress=False)
    split = int(0.9 * len(ids))
    train_ids, held_out = ids[:split], ids[split:]
    config = GPTScratchConfig(context_length=args.context_length, emb_dim=args.emb_dim, n_heads=args.n_heads,
                              n_layers=args.n_layers, drop_rate=0.0, qkv_bias=True, tie_word_embeddings=True)
    model = GPTScratchForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    started = time.perf_counter()
    model.train()
    for step in range(args.steps):
        starts = torch.randint(0, len(train_ids) - args.context_length, (args.batch_size,))
        batch = torch.stack([train_ids[s:s + args.context_length] for s in starts.tolist()])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    print(f"trained {sum(p.numel() for p in model.parameters()):,} parameters for {args.steps} steps of "
          f"{args.batch_size} x {args.context_length} tokens in {time.perf_counter() - started:.0f} s "
          f"(last loss {loss.item():.3f}); torch {torch.__version__}, {torch.get_num_threads()} threads\n")

    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    int8 = quantize(copy.deepcopy(bf16), "int8")
    with tempfile.TemporaryDirectory() as folder:
        int8.save_pretrained(folder)
        reloaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    models = {"fp32": model, "bf16": bf16, "int8 weights, bf16 activations": int8,
              "int8, saved and reloaded": reloaded}
    context = dict(context_length=args.context_length, stride=args.context_length // 2, progress=False)
    rows = {name: [sliding_window_perplexity(m, part, **context).perplexity for part in (train_ids, held_out)]
            for name, m in models.items()}
    print("| weights | perplexity, training 90% | change | perplexity, held-out 10% | change |")
    print("|---|---|---|---|---|")
    base = rows["fp32"]
    for name, (train_ppl, held_ppl) in rows.items():
        print(f"| {name} | {train_ppl:.3f} | {100 * (train_ppl / base[0] - 1):+.2f}% | {held_ppl:.3f} | "
              f"{100 * (held_ppl / base[1] - 1):+.2f}% |")


if __name__ == "__main__":
    main()
