"""Speed against transformers' GPT-2: the same weights, the same inputs, in the same run.

    python benchmarks/model_speed.py                          # 124M preset, CPU, fp32
    python benchmarks/model_speed.py --preset gpt2-medium --device cuda --dtype bfloat16

Rows: a forward pass (prefill) at a few batch x length shapes, and greedy generate() with the KV cache.
Each number is the best of --repeat runs after a warm-up; ratio > 1 means gpt_scratch is faster. Logits
and generated ids are checked to agree before anything is timed.
"""

import argparse
import time

import torch


def timed(fn, repeat: int, device: str) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="1x128,4x256", help="forward shapes, BATCHxLENGTH,...")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    from transformers import GPT2LMHeadModel

    from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM
    from gpt_scratch.convert import config_to_hf_gpt2, from_hf_gpt2

    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    config = GPTScratchConfig.from_preset(args.preset, drop_rate=0.0)
    hf = GPT2LMHeadModel._from_config(config_to_hf_gpt2(config), attn_implementation=args.attn)
    ours = GPTScratchForCausalLM._from_config(config, attn_implementation=args.attn)
    ours.load_state_dict(from_hf_gpt2(hf.state_dict()))
    models = {"transformers GPT2LMHeadModel": hf.to(args.device, dtype).eval(),
              "gpt_scratch": ours.to(args.device, dtype).eval()}

    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
    rows = []
    with torch.inference_mode():
        for batch, length in shapes:
            ids = torch.randint(0, config.vocab_size, (batch, length), device=args.device)
            a, b = (m(ids, use_cache=False).logits.float() for m in models.values())
            diff = (a - b).abs().max().item()
            times = [timed(lambda m=m: m(ids, use_cache=False), args.repeat, args.device) for m in models.values()]
            rows.append((f"forward {batch}x{length}", batch * length, times, f"max logit diff {diff:.1e}"))

        prompt = torch.randint(0, config.vocab_size, (1, 32), device=args.device)
        kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                      pad_token_id=50256)
        outputs = [m.generate(prompt, **kwargs) for m in models.values()]
        same = torch.equal(*outputs)
        times = [timed(lambda m=m: m.generate(prompt, **kwargs), args.repeat, args.device) for m in models.values()]
        rows.append((f"generate 32+{args.new_tokens} greedy", args.new_tokens, times,
                     "same ids" if same else "IDS DIFFER"))

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.preset} ({ours.num_parameters():,} parameters), {args.dtype}, attn={args.attn}, {name}, "
          f"torch {torch.__version__}, best of {args.repeat}\n")
    print(f"| {'workload':<24} | {'transformers':>14} | {'gpt_scratch':>14} | {'ratio':>6} | check |")
    print(f"|{'-' * 26}|{'-' * 16}|{'-' * 16}|{'-' * 8}|-------|")
    for label, tokens, (t_hf, t_ours), check in rows:
        print(f"| {label:<24} | {tokens / t_hf:>9,.0f} tok/s | {tokens / t_ours:>9,.0f} tok/s | "
              f"{t_hf / t_ours:>5.2f}x | {check} |")


if __name__ == "__main__":
    main()
