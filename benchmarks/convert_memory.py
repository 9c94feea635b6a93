"""Peak memory of `gpt-scratch convert` against the checkpoint's size, for GPT-2 large and XL.

    python benchmarks/convert_memory.py                                # 774M and 1558M, temp dir, cleaned
    python benchmarks/convert_memory.py --sizes 774M --workdir /data/bench --keep
    python benchmarks/convert_memory.py --sizes 124M --load            # also time/measure from_pretrained

For each size it writes random-weight transformers GPT-2 checkpoints (no download: the layout
GPT2LMHeadModel.save_pretrained gives, tensor by tensor, so making them needs no more than one tensor of
memory): one sharded at --max-shard-size (default 2GB, as the Hub's big GPT-2s) and one single file. It then
runs `gpt-scratch convert SRC DST` (GPT-2 -> gpt_scratch, fp32) in a fresh process for each, and reads that
process's peak resident memory (VmHWM, which counts memory-mapped file pages too) and time.
The baseline row is the same console script's peak doing no conversion (`gpt-scratch --help`: Python, torch
and transformers imported); "RSS - baseline" is what the conversion itself adds. The target is a peak RSS
of at most 1.2x the largest shard. With --load it also measures `GPTScratchForCausalLM.from_pretrained` and
`GPT2LMHeadModel.from_pretrained` of the sharded checkpoint, each in a fresh process (these hold the model,
so expect about its size). Disk: about 3x the checkpoint (two sources and one output) per size at a time.
"""

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SIZES = {"124M": "gpt2", "355M": "gpt2-medium", "774M": "gpt2-large", "1558M": "gpt2-xl"}
LOAD_SCRIPT = """
import sys, torch
from transformers import GPT2LMHeadModel
from gpt_scratch import GPTScratchForCausalLM
cls = GPTScratchForCausalLM if sys.argv[1] == "gpt_scratch" else GPT2LMHeadModel
model = cls.from_pretrained(sys.argv[2])
with torch.inference_mode():  # a forward pass reads every weight, as any use of the model does
    print(model(torch.tensor([[464, 3290, 318]])).logits.sum().item())
"""


def write_gpt2_checkpoint(folder: Path, preset: str, max_shard_size: str | int) -> None:
    """A random GPT-2 checkpoint laid out as GPT2LMHeadModel.save_pretrained(folder, max_shard_size=...) lays
    it out (config.json, generation_config.json, safetensors shards + index), written one tensor at a time."""
    import json

    from huggingface_hub import split_state_dict_into_shards_factory
    from transformers import GPT2LMHeadModel

    from gpt_scratch import GPTScratchConfig
    from gpt_scratch.checkpoint import SafetensorsWriter
    from gpt_scratch.convert import config_to_hf_gpt2

    config = config_to_hf_gpt2(GPTScratchConfig.from_preset(preset))
    config.dtype, config.architectures = "float32", ["GPT2LMHeadModel"]
    with torch.device("meta"):
        model = GPT2LMHeadModel(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied
    split = split_state_dict_into_shards_factory(
        shapes, get_storage_size=lambda shape: math.prod(shape) * 4, filename_pattern="model{suffix}.safetensors",
        max_shard_size=max_shard_size,
    )
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for filename, keys in split.filename_to_tensors.items():
        writer = SafetensorsWriter(folder / filename, {k: (shapes[k], torch.float32) for k in keys}, {"format": "pt"})
        for key in writer.order:
            writer.write(key, torch.randn(shapes[key], generator=generator) * 0.02)
        writer.close()
    if split.is_sharded:
        index = {"metadata": {"total_parameters": sum(math.prod(s) for s in shapes.values()), **split.metadata},
                 "weight_map": split.tensor_to_filename}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)


def high_water_mark(pid: int) -> int | None:
    """VmHWM of a running process, in bytes: the peak of its resident memory since its exec."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):  # gone, or a zombie (no memory left to report)
        return None


def run(command: list[str]) -> tuple[float, int, str]:
    """Run a command in a fresh process; its wall time, peak RSS in bytes, and stdout.

    The peak is the process's VmHWM, polled until it exits: ru_maxrss (getrusage/wait4) would also count
    this benchmark's own memory, which the child shares between fork and exec.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, high_water_mark(process.pid) or 0)
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{err.read()[-3000:]}")
        return elapsed, peak, out.read()


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="774M,1558M", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--workdir", type=Path, help="where to write checkpoints (default: a temp dir, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints in --workdir")
    parser.add_argument("--max-shard-size", default="2GB", help="shard size of the sharded source checkpoint")
    parser.add_argument("--load", action="store_true", help="also measure from_pretrained of the sharded source")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")

    cli = shutil.which("gpt-scratch", path=str(Path(sys.executable).parent)) or shutil.which("gpt-scratch")
    if cli is None:
        raise SystemExit("the gpt-scratch console script is not installed (pip install -e .)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="convert_memory_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        _, baseline, _ = run([cli, "--help"])
        rows.append(("baseline", "gpt-scratch --help", "-", "-", gib(baseline), "-", "-", "-"))
        for size in sizes:
            for variant, shard in (("sharded", args.max_shard_size), ("single file", "1000GB")):
                src = workdir / f"gpt2-{size}-{variant.replace(' ', '-')}"
                dst = workdir / f"scratch-{size}"
                if not src.exists():
                    print(f"writing {src} ...", file=sys.stderr)
                    write_gpt2_checkpoint(src, SIZES[size], shard)
                weights = list(src.glob("*.safetensors"))
                total, largest = sum(p.stat().st_size for p in weights), max(p.stat().st_size for p in weights)
                print(f"converting {src} ...", file=sys.stderr)
                elapsed, peak, _ = run([cli, "convert", str(src), str(dst), "--overwrite"])
                shutil.rmtree(dst)
                rows.append((size, f"convert, {variant} ({len(weights)} file(s))", gib(total), gib(largest), gib(peak),
                             gib(peak - baseline), f"{peak / largest:.2f}", f"{elapsed:.1f} s"))
                if args.load and variant == "sharded":
                    for name in ("gpt_scratch", "transformers"):
                        elapsed, peak, _ = run([sys.executable, "-c", LOAD_SCRIPT, name, str(src)])
                        rows.append((size, f"from_pretrained, {name}", gib(total), gib(largest), gib(peak),
                                     gib(peak - baseline), f"{peak / largest:.2f}", f"{elapsed:.1f} s"))
                if not args.keep:
                    shutil.rmtree(src)
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    header = ("size", "run", "checkpoint", "largest shard", "peak RSS", "RSS - baseline", "RSS / largest shard",
              "time")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()
