"""Speed where users run it: gpt_scratch against transformers' GPT-2 (and llama.cpp), the same weights, one run.

    python benchmarks/speed.py                                  # the whole table: 124M, CPU, every row
    python benchmarks/speed.py --rows decode,prefill            # some rows only (decode prefill train load)
    python benchmarks/speed.py --preset gpt2 --no-compile       # without the static-cache + compiled decode rows
    python benchmarks/speed.py --device cuda                    # the GPU table (bf16, sdpa and flash, static cache +
                                                                # compile, batch 1 and 32); see benchmarks/RESULTS.md

Both models hold the same random weights (GPT-2's initialisation, converted with gpt_scratch.convert) and run the same
inputs; the implementations alternate within each repeat (gpt_scratch, transformers, llama.cpp, gpt_scratch, ...) and
each number is the best of --repeat runs after a warm-up, so a load that comes and goes hits all of them alike.
Ratios are gpt_scratch / transformers (> 1: gpt_scratch is faster or smaller) and gpt_scratch / llama.cpp. Each row
checks its parity first and says so in the last column: the greedy ids (decode), the largest logit difference
(prefill), the first step's loss (train), the first generated token (load).

Rows:
- decode: greedy `generate()` of --new-tokens after a --prompt-tokens prompt, batch 1 (and 8 in fp32), fp32, bf16 and,
  for gpt_scratch, int8 weights with bf16 activations (`gpt_scratch.quantize`; GPT-2's Conv1D has no such path);
  with the dynamic cache (generate's default) and, unless --no-compile, a static cache with the decode step compiled
  (`torch.compile` through generate's `compile_config`; the first call's compile time is reported);
- prefill: one forward pass over --prefill-tokens tokens returning every position's logits, fp32 and bf16;
- train: AdamW steps on a --train-shape batch (fp32, and bf16 autocast), each in a fresh process: tokens/s, the step's
  peak memory above what the model, gradients and optimizer hold between steps, system time and minor page faults;
- load: a fresh process (torch imported) imports transformers (and gpt_scratch, for ours), loads --load-sizes from
  safetensors (ours: our folder, transformers: the converted GPT-2 folder, the same weights) and makes one token: the
  time to it, and the process's peak RSS against the weights file.

llama.cpp (`llama-cpp-python`, installed by hand: it compiles llama.cpp, so it is no dependency and never runs in CI)
adds a column where it imports, on GGUF files written by `gpt-scratch convert --to gguf` (f32, bf16, q8_0).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

IMPLEMENTATIONS = ("gpt_scratch", "transformers", "llama.cpp")
LOAD_SIZES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl", "tiny": "tiny"}
# --preset tiny: GPT-2's vocabulary and context on a model small enough for the smoke test (tests/test_benchmarks.py).
TINY = dict(emb_dim=64, n_heads=4, n_layers=2)


def preset_config(preset: str, **overrides):
    from gpt_scratch import GPTScratchConfig

    if preset == "tiny":
        return GPTScratchConfig.from_preset("gpt2", **TINY, **overrides)
    return GPTScratchConfig.from_preset(preset, **overrides)


@dataclass
class Row:
    """One workload: a value per implementation (higher is better unless `lower_is_better`), its unit, notes."""

    workload: str
    unit: str
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    check: str = ""
    lower_is_better: bool = False

    def progress(self) -> "Row":
        """Say on stderr what was measured, while the run goes on (the table comes at the end)."""
        print(f"{self.workload}: " + ", ".join(f"{k} {v:,.2f} {self.unit}" for k, v in self.values.items())
              + f"; {self.check}", file=sys.stderr, flush=True)
        return self

    def ratio(self, other: str) -> str:
        ours, theirs = self.values.get("gpt_scratch"), self.values.get(other)
        if not ours or not theirs:
            return "-"
        return f"{(theirs / ours if self.lower_is_better else ours / theirs):.2f}x"


def best_of(repeat: int, runs: dict[str, callable]) -> dict[str, float]:
    """Seconds of each callable's fastest run, the callables alternating within each repeat (after one warm-up)."""
    for fn in runs.values():
        fn()
    best = {name: float("inf") for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# ----- the models ----------------------------------------------------------------------------------------------


def model_pair(preset: str, attn: str, device: str, overrides: dict | None = None):
    """transformers' GPT2LMHeadModel and ours with the same random weights, fp32, in eval mode."""
    from transformers import GPT2LMHeadModel

    from gpt_scratch import GPTScratchForCausalLM
    from gpt_scratch.convert import config_to_hf_gpt2, from_hf_gpt2

    torch.manual_seed(0)
    config = preset_config(preset, drop_rate=0.0, **(overrides or {}))
    hf = GPT2LMHeadModel._from_config(config_to_hf_gpt2(config), attn_implementation=attn)
    ours = GPTScratchForCausalLM._from_config(config, attn_implementation=attn)
    ours.load_state_dict(from_hf_gpt2(hf.state_dict()))
    return ours.to(device).eval(), hf.to(device).eval()


def quantized(model):
    """`gpt_scratch.quantize(model, "int8")` on a bf16 copy of `model`, or None where gpt_scratch has no quantize."""
    import copy

    import gpt_scratch

    if not hasattr(gpt_scratch, "quantize"):
        return None
    return gpt_scratch.quantize(copy.deepcopy(model).to(torch.bfloat16), "int8")


def compile_options(device: str):
    """generate()'s compile_config for a static cache's decode step, on any device (generate compiles on accelerators
    only unless told), fullgraph so a graph break fails loudly; CUDA graphs on a GPU."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, dynamic=False, mode="reduce-overhead" if device == "cuda" else "default")
    config._compile_all_devices = True
    return dict(cache_implementation="static", compile_config=config)


# ----- decode and prefill -----------------------------------------------------------------------------------------


def decode_rows(args, ours, hf, llama) -> list[Row]:
    rows = []
    prompt_1 = torch.randint(0, 50256, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(1))
    settings = [("fp32", "fp32", torch.float32, 1), ("bf16", "bf16", torch.bfloat16, 1),
                ("int8", "int8 weights, bf16", "int8", 1), ("batch8", "fp32, batch 8", torch.float32, 8)]
    if args.device == "cuda":
        settings = [("bf16", "bf16", torch.bfloat16, 1), ("batch32", "bf16, batch 32", torch.bfloat16, 32)]
    for key, label, dtype, batch in settings:
        prompt = prompt_1.repeat(batch, 1).to(args.device)
        mask = torch.ones_like(prompt)
        if dtype == "int8":  # against gpt_scratch in bf16, the activations' dtype
            models = {"gpt_scratch": quantized(ours.to(torch.bfloat16))}
        else:
            models = {"gpt_scratch": ours.to(dtype), "transformers": hf.to(dtype)}
        models = {name: model for name, model in models.items() if model is not None}
        gguf = {"fp32": "f32", "bf16": "bf16", "int8 weights, bf16": "q8_0"}.get(label)
        static = args.compile and (args.static_for is None or key in args.static_for.split(","))
        for cache in ("dynamic", "static") if static else ("dynamic",):
            kwargs = dict(attention_mask=mask, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                          do_sample=False, pad_token_id=50256)
            if cache == "static":
                kwargs.update(compile_options(args.device))
            row = Row(f"decode {label}, {args.prompt_tokens}-token prompt + {args.new_tokens}"
                      + (", static cache + compile" if cache == "static" else ""), "tok/s")
            runs = {name: (lambda m=model: m.generate(prompt, **kwargs)) for name, model in models.items()}
            with torch.inference_mode():
                for name, fn in runs.items():  # the first call compiles (static), or warms up
                    start = time.perf_counter()
                    outputs = fn()
                    if cache == "static":
                        row.notes[name] = f"first call {time.perf_counter() - start:.0f} s (compile)"
                    if name == "gpt_scratch":
                        ids = outputs
                if dtype == "int8":
                    expected = ours.generate(prompt, **kwargs)
                    row.check = f"{_same(ids, expected, args.prompt_tokens)} ids as gpt_scratch bf16"
                elif "transformers" in runs:
                    row.check = f"{_same(ids, runs['transformers'](), args.prompt_tokens)} ids as transformers"
                if llama and gguf and batch == 1 and cache == "dynamic" and args.device == "cpu":
                    runs["llama.cpp"] = llama.decoder(gguf, prompt_1[0].tolist(), args.new_tokens)
                times = best_of(args.repeat, runs)
            row.values = {name: batch * args.new_tokens / seconds for name, seconds in times.items()}
            if "llama.cpp" in runs:
                row.notes["llama.cpp"] = gguf
            rows.append(row.progress())
    ours.float(), hf.float()
    return rows


def _same(ids: torch.Tensor, expected: torch.Tensor, prompt_tokens: int) -> str:
    new, old = ids[:, prompt_tokens:], expected[:, prompt_tokens:]
    if new.shape == old.shape and torch.equal(new, old):
        return "same"
    equal = (new == old).all(0).cumprod(0).sum().item() if new.shape == old.shape else 0
    return f"first {equal}/{old.shape[1]}"


def prefill_rows(args, ours, hf, llama) -> list[Row]:
    rows = []
    ids = torch.randint(0, 50256, (1, args.prefill_tokens), generator=torch.Generator().manual_seed(2))
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        models = {"gpt_scratch": ours.to(dtype), "transformers": hf.to(dtype)}
        row = Row(f"prefill {args.prefill_tokens} tokens, all logits, {label}", "ms", lower_is_better=True)
        with torch.inference_mode():
            runs = {name: (lambda m=m: m(ids.to(args.device), use_cache=False).logits) for name, m in models.items()}
            logits = {name: fn().float() for name, fn in runs.items()}
            row.check = f"max abs dlogits {(logits['gpt_scratch'] - logits['transformers']).abs().max().item():.1e}"
            del logits
            gguf = {"fp32": "f32", "bf16": "bf16"}[label]
            if llama and args.device == "cpu":
                runs["llama.cpp"] = llama.prefill(gguf, ids[0].tolist())
                row.notes["llama.cpp"] = gguf
            times = best_of(args.repeat, runs)
        row.values = {name: seconds * 1e3 for name, seconds in times.items()}
        rows.append(row.progress())
    ours.float(), hf.float()
    return rows


class LlamaCpp:
    """llama.cpp through llama-cpp-python, on our own GGUF export of the same weights; one context per file type."""

    def __init__(self, ours, workdir: Path, threads: int):
        from gpt_scratch.checkpoint import convert_checkpoint

        folder = workdir / "scratch-for-gguf"
        if not folder.exists():
            ours.save_pretrained(folder)
        self.files = {}
        for file_type in ("f32", "bf16", "q8_0"):
            path = workdir / f"model-{file_type}.gguf"
            if not path.exists():
                convert_checkpoint(folder, path, dst_format="gguf", dtype=file_type)
            self.files[file_type] = path
        self.threads = threads
        self._models = {}

    def model(self, file_type: str, logits_all: bool):
        from llama_cpp import Llama

        key = (file_type, logits_all)
        if key not in self._models:
            self._models[key] = Llama(model_path=str(self.files[file_type]), n_ctx=1024, n_batch=1024,
                                      n_ubatch=1024, logits_all=logits_all, n_threads=self.threads,
                                      n_threads_batch=self.threads, verbose=False)
        return self._models[key]

    def decoder(self, file_type: str, prompt: list[int], new_tokens: int):
        llm = self.model(file_type, logits_all=False)

        def run():  # greedy, as llama-cpp-python's users drive it
            made = 0
            for _ in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
                made += 1
                if made == new_tokens:
                    break
        return run

    def prefill(self, file_type: str, ids: list[int]):
        llm = self.model(file_type, logits_all=True)

        def run():
            llm.reset()
            llm.eval(ids)
        return run


# ----- training, in fresh processes ----------------------------------------------------------------------------------


def train_rows(args) -> list[Row]:
    rows = []
    for label in ("fp32", "bf16 autocast") if args.device == "cpu" else ("bf16 autocast",):
        row = Row(f"train step {args.train_shape}, AdamW, {label}", "tok/s")
        results = {}
        for _ in range(args.repeat):
            for name in IMPLEMENTATIONS[:2]:
                result = _worker("train", name, args.preset, label, args.train_shape, str(args.train_steps),
                                 args.attn, args.device)
                if name not in results or result["tokens_per_second"] > results[name]["tokens_per_second"]:
                    results[name] = result
        row.values = {name: r["tokens_per_second"] for name, r in results.items()}
        row.notes = {name: f"step peak {r['step_peak'] / 2**20:,.0f} MiB, {r['sys_seconds']:.2f} s sys, "
                           f"{r['minor_faults'] / 1e3:,.0f}k faults" for name, r in results.items()}
        losses = {name: r["first_loss"] for name, r in results.items()}
        row.check = (f"first loss {losses['gpt_scratch']:.4f} vs {losses['transformers']:.4f}")
        rows.append(row.progress())
        peaks = {name: r["step_peak"] for name, r in results.items()}
        rows.append(Row(f"train step {args.train_shape}, {label}: step peak memory", "MiB",
                        {name: peak / 2**20 for name, peak in peaks.items()}, lower_is_better=True,
                        check="above model + grads + AdamW"))
    return rows


def train_worker(name: str, preset: str, label: str, shape: str, steps: int, attn: str = "sdpa",
                 device: str = "cpu") -> dict:
    batch, length = (int(n) for n in shape.split("x"))
    ours, hf = model_pair(preset, attn, device)
    model = (ours if name == "gpt_scratch" else hf).train()
    del ours, hf
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, 50256, (batch, length), generator=torch.Generator().manual_seed(3)).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=label.startswith("bf16"))

    def step():
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    first_loss = step()  # allocates the gradients and AdamW's states: held between steps from here on
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # restart VmHWM from the current RSS
        held = _proc_status("VmRSS")
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    best = float("inf")
    for _ in range(steps):
        step_start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - step_start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"tokens_per_second": batch * length / best, "first_loss": first_loss,
            "step_peak": (torch.cuda.max_memory_allocated() if device == "cuda" else _proc_status("VmHWM")) - held,
            "sys_seconds": (after.ru_stime - before.ru_stime) / steps,
            "minor_faults": (after.ru_minflt - before.ru_minflt) / steps, "seconds": time.perf_counter() - start}


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(f"{key}:"))


# ----- loading, in fresh processes -----------------------------------------------------------------------------------


def load_rows(args, workdir: Path) -> list[Row]:
    from gpt_scratch import GPTScratchForCausalLM
    from gpt_scratch.checkpoint import convert_checkpoint

    rows = []
    for size in args.load_sizes.split(","):
        folders = {"gpt_scratch": workdir / f"scratch-{size}", "transformers": workdir / f"gpt2-{size}"}
        if not folders["transformers"].exists():  # the same random weights in both formats
            torch.manual_seed(0)
            model = GPTScratchForCausalLM(preset_config(LOAD_SIZES[size], drop_rate=0.0))
            model.save_pretrained(folders["gpt_scratch"])
            del model
            convert_checkpoint(folders["gpt_scratch"], folders["transformers"], dst_format="hf-gpt2")
        file_size = {name: sum(p.stat().st_size for p in folder.glob("*.safetensors"))
                     for name, folder in folders.items()}
        results = {}
        for _ in range(args.repeat):
            for name, folder in folders.items():
                result = _worker("load", name, str(folder))
                if name not in results or result["seconds"] < results[name]["seconds"]:
                    results[name] = result
        tokens = {r["token"] for r in results.values()}
        rows.append(Row(f"load {size} from safetensors: time to first token (imports included)", "s",
                        {name: r["seconds"] for name, r in results.items()}, lower_is_better=True,
                        check="same first token" if len(tokens) == 1 else f"TOKENS DIFFER {tokens}",
                        notes={name: f"{r['class']}, {r['imports']:.1f} s of it imports"
                               for name, r in results.items()}))
        rows.append(Row(f"load {size}: peak RSS / weights file ({file_size['gpt_scratch'] / 2**30:.2f} GiB)", "x file",
                        {name: r["peak"] / file_size[name] for name, r in results.items()}, lower_is_better=True,
                        notes={name: f"{r['peak'] / 2**30:.2f} GiB ({r['baseline'] / 2**30:.2f} before loading)"
                               for name, r in results.items()}))
    return rows


def load_worker(name: str, folder: str) -> dict:
    started = time.perf_counter()
    from transformers import AutoModelForCausalLM

    if name == "gpt_scratch":
        import gpt_scratch  # noqa: F401  (registers the model, as a user's `import gpt_scratch` does)
    imports = time.perf_counter() - started
    baseline = _proc_status("VmRSS")
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.inference_mode():
        token = model.generate(torch.tensor([[464, 3290, 318]]), max_new_tokens=1, do_sample=False,
                               pad_token_id=50256)[0, -1].item()
    return {"seconds": time.perf_counter() - started, "imports": imports, "peak": _proc_status("VmHWM"),
            "baseline": baseline, "token": token, "class": type(model).__name__}


def _worker(*argv: str) -> dict:
    """Run `speed.py --worker ARGV...` in a fresh interpreter; the JSON it prints."""
    result = subprocess.run([sys.executable, __file__, "--worker", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"worker {argv} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----- the table -------------------------------------------------------------------------------------------------


def versions(device: str) -> str:
    import transformers

    parts = [f"torch {torch.__version__}", f"transformers {transformers.__version__}",
             f"{torch.get_num_threads()} torch threads", f"Python {platform.python_version()}"]
    try:
        import llama_cpp

        parts.append(f"llama-cpp-python {llama_cpp.__version__}")
    except ImportError:
        parts.append("no llama-cpp-python")
    machine = torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPUs ({platform.processor()})"
    return ", ".join([machine, *parts])


def print_table(rows: list[Row], columns: list[str]) -> None:
    header = ["workload", "gpt_scratch", "transformers", "ratio"] + (["llama.cpp", "ratio"] if "llama.cpp" in columns
                                                                      else []) + ["check", "notes"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        def cell(name):
            value = row.values.get(name)
            return "-" if value is None else f"{value:,.2f} {row.unit}" if value < 10 else f"{value:,.1f} {row.unit}"
        cells = [row.workload, cell("gpt_scratch"), cell("transformers"), row.ratio("transformers")]
        if "llama.cpp" in columns:
            cells += [cell("llama.cpp"), row.ratio("llama.cpp")]
        notes = "; ".join(f"{name}: {note}" for name, note in row.notes.items())
        print("| " + " | ".join(cells + [row.check or "-", notes or "-"]) + " |")


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        kind, *rest = sys.argv[2:]
        result = train_worker(*rest[:4], int(rest[4]), *rest[5:]) if kind == "train" else load_worker(*rest)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2", help="the model for decode, prefill and train (default gpt2)")
    parser.add_argument("--rows", default="decode,prefill,train,load")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--attn", default="sdpa", help="attention for both models: sdpa (default), eager, "
                                                       "flash_attention_2 (a GPU with flash-attn installed)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefill-tokens", type=int, default=1024)
    parser.add_argument("--train-shape", default="4x256", help="BATCHxLENGTH")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--load-sizes", default="124M,774M")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the static cache rows")
    parser.add_argument("--static-for", metavar="LABELS", help="the static cache rows for these decode settings "
                        "only (comma-separated: fp32, bf16, int8, batch8; on a GPU bf16, batch32)")
    parser.add_argument("--no-llama-cpp", dest="llama_cpp", action="store_false")
    parser.add_argument("--workdir", type=Path, help="where to keep checkpoints and GGUF files (default: temporary)")
    args = parser.parse_args()
    wanted = args.rows.split(",")

    print(versions(args.device))
    rows: list[Row] = []
    columns = list(IMPLEMENTATIONS[:2])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if "decode" in wanted or "prefill" in wanted:
            ours, hf = model_pair(args.preset, args.attn, args.device)
            llama = None
            if args.llama_cpp and args.device == "cpu":
                try:
                    import llama_cpp  # noqa: F401
                except ImportError:
                    pass
                else:
                    llama = LlamaCpp(ours, workdir, torch.get_num_threads())
                    columns.append("llama.cpp")
            if "decode" in wanted:
                rows += decode_rows(args, ours, hf, llama)
            if "prefill" in wanted:
                rows += prefill_rows(args, ours, hf, llama)
            del ours, hf, llama
        if "train" in wanted:
            rows += train_rows(args)
        if "load" in wanted and args.device == "cpu":
            rows += load_rows(args, workdir)
    print(f"{args.preset}, attention {args.attn}, best of {args.repeat}, implementations interleaved\n")
    print_table(rows, columns)


if __name__ == "__main__":
    main()
