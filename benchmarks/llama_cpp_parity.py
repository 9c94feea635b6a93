"""llama.cpp runs our GGUF files as we run the model: tokenizer ids, prompt logits and greedy tokens, in one table.

Needs llama-cpp-python (`pip install llama-cpp-python`: it compiles llama.cpp, about 8 minutes on 2 cores), so it is
never run in CI; tests/test_gguf.py checks the files themselves.

    python benchmarks/llama_cpp_parity.py                        # a small random GPT (sharpened: its tokens
                                                                 # depend on the whole prompt), f32 f16 bf16 q8_0
    python benchmarks/llama_cpp_parity.py --model out/model --types f32,q8_0
    python benchmarks/llama_cpp_parity.py --converter llama.cpp/convert_hf_to_gguf.py   # also llama.cpp's own
                                                                 # converter, on our `convert --to hf-gpt2` folder

Rows: one GGUF file each. Columns: whether llama.cpp's tokenizer gives our ids for the prompt, the largest difference
of the prompt's logits, and whether the greedy tokens are ours.

Measured (llama-cpp-python 0.3.36, CPU): the default sharpened model gives the same ids everywhere, and the same 16
greedy tokens from f32 and f16 (max |dlogits| 2.1e-2 and 3.1e-2, on logits of a few units: sharp attention magnifies
kernel differences), 10 of 16 from bf16 and 5 of 16 from q8_0; a model at GPT-2's initialisation (`--model`) gives
3.8e-4 (f32), 6.5e-4 (f16), 5.2e-3 (bf16), 1.7e-2 (q8_0), the same tokens from all four. (A llama.cpp built for the
machine's CPU may stop on q8_0 with an illegal instruction inside a virtual machine: CMAKE_ARGS="-DGGML_NATIVE=OFF".)
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

PROMPT = "Every effort moves you, and I had always thought Jack Gisburn rather a cheap genius"


def llama_cpp_run(path: Path, prompt_ids: list[int], new_tokens: int, n_ctx: int):
    """(llama.cpp's prompt ids, its prompt logits, its greedy continuation) for one GGUF file."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=False)
    llm.reset()
    llm.eval(prompt_ids)
    logits = np.array(llm.scores[: len(prompt_ids)])
    continuation = []
    for _ in range(new_tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        continuation.append(token)
        llm.eval([token])
    return ids, torch.from_numpy(logits), continuation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a saved model folder (default: a small random GPT)")
    parser.add_argument("--types", default="f32,f16,bf16,q8_0", help="GGUF file types to check")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--converter", type=Path, help="llama.cpp's convert_hf_to_gguf.py, to check its file too")
    args = parser.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("needs llama-cpp-python: pip install llama-cpp-python (compiles llama.cpp, ~8 minutes)")

    from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, load_tokenizer
    from gpt_scratch.checkpoint import convert_checkpoint

    work = Path(tempfile.mkdtemp(prefix="llama-cpp-parity-"))
    if args.model is None:
        torch.manual_seed(0)
        model = GPTScratchForCausalLM(GPTScratchConfig(context_length=256, emb_dim=128, n_heads=4, n_layers=4,
                                                       drop_rate=0.0, qkv_bias=True))
        with torch.no_grad():  # sharp attention: the continuation depends on the whole prompt
            for name, p in model.named_parameters():
                if p.ndim == 2 and "emb" not in name:
                    p.normal_(0.0, (5 / model.config.emb_dim) ** 0.5)
        model.save_pretrained(work / "model")
        source = work / "model"
    else:
        source = args.model
        model = GPTScratchForCausalLM.from_pretrained(source)
    model = model.float().eval()
    prompt_ids = load_tokenizer()(PROMPT)["input_ids"]
    with torch.no_grad():
        ours_logits = model(torch.tensor([prompt_ids])).logits[0]
        ours_tokens = model.generate(torch.tensor([prompt_ids]), max_new_tokens=args.new_tokens, do_sample=False,
                                     eos_token_id=None, pad_token_id=50256)[0, len(prompt_ids):].tolist()

    files = {}
    for file_type in args.types.split(","):
        files[f"gpt-scratch convert --to gguf, {file_type}"] = convert_checkpoint(
            source, work / f"model-{file_type}.gguf", dst_format="gguf", dtype=file_type).path
    if args.converter is not None:
        convert_checkpoint(source, work / "hf", dst_format="hf-gpt2")
        out = work / "converter-f32.gguf"
        subprocess.run([sys.executable, str(args.converter), str(work / "hf"), "--outfile", str(out), "--outtype",
                        "f32"], check=True)
        files["llama.cpp's convert_hf_to_gguf.py on --to hf-gpt2, f32"] = out

    print(f"prompt: {len(prompt_ids)} tokens, {args.new_tokens} greedy tokens; files in {work}\n")
    print("| GGUF file | tokenizer ids | max abs dlogits (prompt) | greedy tokens |")
    print("|---|---|---|---|")
    for label, path in files.items():
        ids, logits, tokens = llama_cpp_run(path, prompt_ids, args.new_tokens, model.config.context_length)
        same = sum(a == b for a, b in zip(tokens, ours_tokens))
        print(f"| {label} | {'same' if ids == prompt_ids else 'DIFFERENT'} | "
              f"{(logits - ours_logits).abs().max().item():.2e} | "
              f"{'same' if tokens == ours_tokens else f'{same}/{len(tokens)} equal'} |")


if __name__ == "__main__":
    main()
