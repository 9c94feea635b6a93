"""vLLM's transformers backend, serving a gpt_scratch folder, gives our greedy tokens (needs a CUDA GPU and vLLM).

    pip install vllm                                       # on a machine with a CUDA GPU
    python benchmarks/vllm_parity.py                       # a small sharpened model, saved to a temporary folder
    python benchmarks/vllm_parity.py --folder my-gpt --dtype bfloat16    # a folder written by save_pretrained

vLLM loads the folder with `model_impl="transformers"`: our modeling file runs as remote code, attention goes through
vLLM's paged kernels (registered in transformers' ALL_ATTENTION_FUNCTIONS; the model passes its kwargs down to them
and sets `_supports_attention_backend`), and the Linear layers named in `base_model_tp_plan` become vLLM's. Tensor
parallel size 1. The same prompts (of different lengths) are decoded greedily by vLLM and by
`GPTScratchForCausalLM.generate`; the script prints a table and exits 1 if any continuation differs.

Status: checked on paper against vLLM's transformers backend, not yet run (written where no GPU was available).
Record a run's table in benchmarks/RESULTS.md.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, load_tokenizer

# Of different lengths (12, 1, 5 and 5 tokens), so vLLM batches prefill and decode steps together.
PROMPTS = ["I had always thought Jack Gisburn rather a cheap genius", "Hello", "It was the last word",
           "The height of his glory"]


def small_sharp_model(folder: Path) -> None:
    """A random GPT-2-vocabulary model whose continuations depend on the whole prompt: weight matrices of std
    sqrt(5 / emb_dim) make attention sharp (at GPT-2's init it is nearly uniform, and a broken KV cache hides)."""
    torch.manual_seed(0)
    config = GPTScratchConfig(vocab_size=50257, context_length=256, emb_dim=256, n_heads=4, n_layers=4,
                              drop_rate=0.0, qkv_bias=True, tie_word_embeddings=True)
    model = GPTScratchForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "emb" not in name:
                p.normal_(0.0, (5 / config.emb_dim) ** 0.5)
    model.save_pretrained(folder)
    load_tokenizer(model_max_length=config.context_length).save_pretrained(folder)


def ours(folder: Path, prompts: list[list[int]], new_tokens: int, dtype: torch.dtype, device: str) -> list[list[int]]:
    model = GPTScratchForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    out = []
    for ids in prompts:
        generated = model.generate(torch.tensor([ids], device=device), max_new_tokens=new_tokens, do_sample=False,
                                   eos_token_id=None, pad_token_id=50256)
        out.append(generated[0, len(ids):].tolist())
    return out


def vllm_greedy(folder: Path, prompts: list[list[int]], new_tokens: int, dtype: str, context_length: int):
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(folder), model_impl="transformers", trust_remote_code=True, tensor_parallel_size=1,
              dtype=dtype, max_model_len=context_length, gpu_memory_utilization=0.5, seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params)
    return [list(output.outputs[0].token_ids) for output in outputs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="a gpt_scratch folder with a tokenizer (default: a small "
                                                    "sharpened model, saved to a temporary folder)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--new-tokens", type=int, default=24)
    args = parser.parse_args()
    if args.new_tokens < 1:
        parser.error(f"--new-tokens must be >= 1, got {args.new_tokens}")
    if args.folder is not None and not (args.folder / "config.json").is_file():
        parser.error(f"--folder {args.folder} has no config.json: pass a folder written by save_pretrained")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "model"
        if args.folder is None:
            small_sharp_model(folder)
        tokenizer = load_tokenizer()
        prompts = [tokenizer(p).input_ids for p in PROMPTS]
        context_length = GPTScratchConfig.from_pretrained(folder).context_length
        device = "cuda" if torch.cuda.is_available() else "cpu"
        expected = ours(folder, prompts, args.new_tokens, getattr(torch, args.dtype), device)
        try:
            import vllm
        except ImportError:
            print("vLLM is not installed (pip install vllm, on a machine with a CUDA GPU); our tokens:")
            for prompt, tokens in zip(PROMPTS, expected):
                print(f"  {prompt!r}: {tokens}")
            return 2
        got = vllm_greedy(folder, prompts, args.new_tokens, args.dtype, context_length)

    import transformers

    print(f"vLLM {vllm.__version__}, transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}, {args.dtype}, "
          f"{args.new_tokens} new tokens, tensor parallel 1")
    print("| prompt tokens | first differing position | same tokens |")
    print("|---|---|---|")
    for ids, a, b in zip(prompts, expected, got):
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), "-" if len(a) == len(b) else len(a))
        print(f"| {len(ids)} | {first} | {'yes' if a == b else 'no'} |")
    return 0 if got == expected else 1


if __name__ == "__main__":
    sys.exit(main())
