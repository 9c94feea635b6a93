"""What test_distributed.py runs under `torchrun --nproc_per_node 2` (CPU, gloo): one launch checks them all.

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py TIED UNTIED TRAIN OUT

TIED and UNTIED are model folders saved by an unwrapped model; TRAIN is a folder the DDP run starts from. Each
check compares the two processes with one process (every rank also runs the single-process reference), and rank 0
writes what it measured to OUT/results.json for the test to assert on:

- tensor parallelism: `from_pretrained(folder, distributed_config=DistributedConfig(tp_plan="auto"))`, logits (with
  and without autograd), the gradients of the row-split layers' biases, greedy tokens, and the folder it saves;
- FSDP2: `fully_shard` per TransformerBlock, then the root: the folder it saves (full state dict, as Trainer saves
  it) and the losses of a few AdamW steps on half the batch per rank;
- DDP through `Trainer`: its logged losses and the folder `save_model` writes.
"""

import filecmp
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from transformers import DistributedConfig, Trainer, TrainingArguments

from gpt_scratch import GPTScratchForCausalLM, TokenWindowDataset, collate_windows, tokenize_file
from gpt_scratch.data import THE_VERDICT

# The models' vocabulary: small for speed, odd so that the ranks' shards of it differ in size.
VOCAB = 1001
GREEDY = dict(do_sample=False, pad_token_id=0, eos_token_id=None, max_new_tokens=10)
# The DDP run: 12 steps of 4 windows per rank; one process takes the same 8-window global batches.
TRAINER_ARGS = dict(max_steps=12, learning_rate=2e-3, warmup_steps=2, logging_steps=1, save_strategy="no",
                    report_to=[], use_cpu=True, seed=0, dataloader_num_workers=0)


def same_inputs(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Token ids every rank draws alike: tensor parallelism needs the same batch on every rank."""
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def training_windows(context_length: int) -> TokenWindowDataset:
    """The book's text in windows, its GPT-2 ids folded into the small vocabulary."""
    return TokenWindowDataset(tokenize_file(THE_VERDICT, progress=False) % VOCAB, context_length)


def same_folder(a: Path, b: Path) -> dict:
    names = sorted(p.name for p in a.iterdir())
    return {"names": names, "other_names": sorted(p.name for p in b.iterdir()),
            "differ": [n for n in names if not (b / n).is_file() or not filecmp.cmp(a / n, b / n, shallow=False)]}


def full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def check_tensor_parallel(folder: Path, out: Path) -> dict:
    ref = GPTScratchForCausalLM.from_pretrained(folder).eval()
    tp = GPTScratchForCausalLM.from_pretrained(folder, distributed_config=DistributedConfig(tp_plan="auto")).eval()
    head, emb = tp.lm_head.weight, tp.model.tok_emb.weight
    result = {"head_sharded": isinstance(head, DTensor), "embedding_sharded": isinstance(emb, DTensor),
              "head_is_embedding": head is emb}

    ids = same_inputs(1, (2, 12))
    with torch.no_grad():
        result["logits_max_diff"] = (tp(ids).logits - ref(ids).logits).abs().max().item()
    # With autograd on, the layers run on DTensors (the inference path above uses local tensors): the row-split
    # layers add their bias once, after the all-reduce, in both.
    labels = same_inputs(2, (2, 12))
    losses = [model(ids, labels=labels) for model in (tp, ref)]
    result["train_logits_max_diff"] = (losses[0].logits - losses[1].logits).abs().max().item()
    for loss in losses:
        loss.loss.backward()
    result["bias_grad_max_diff"] = {
        name: (full(tp.get_parameter(name).grad) - ref.get_parameter(name).grad).abs().max().item()
        for name in ("model.trf_blocks.1.att.out_proj.bias", "model.trf_blocks.1.ff.layers.project.bias",
                     "model.trf_blocks.0.att.W_query.bias", "model.trf_blocks.0.ff.layers.expand.bias")
    }

    prompt = same_inputs(3, (1, 8))
    changed = prompt.clone()
    changed[0, 0] = (changed[0, 0] + 1) % VOCAB
    with torch.no_grad():
        result["greedy"] = tp.generate(prompt, **GREEDY)[0, 8:].tolist()
        result["greedy_uncached"] = tp.generate(prompt, use_cache=False, **GREEDY)[0, 8:].tolist()
        result["greedy_reference"] = ref.generate(prompt, **GREEDY)[0, 8:].tolist()
        result["greedy_changed_prompt"] = ref.generate(changed, **GREEDY)[0, 8:].tolist()

    saved = out / f"tp-{folder.name}"
    tp.save_pretrained(saved)  # every rank: the shards are gathered, rank 0 writes
    dist.barrier()
    result["saved"] = same_folder(folder, saved)
    return result


def check_fsdp2(folder: Path, out: Path) -> dict:
    ref = GPTScratchForCausalLM.from_pretrained(folder)
    model = GPTScratchForCausalLM.from_pretrained(folder)
    for block in model.model.trf_blocks:
        fully_shard(block)
    fully_shard(model)
    result = {"class": type(model).__name__}

    # A full state dict gathered from the shards, as Trainer (through accelerate) saves an FSDP2 model.
    state_dict = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    saved = out / "fsdp2"
    if dist.get_rank() == 0:
        model.save_pretrained(saved, state_dict=state_dict)
    dist.barrier()
    result["saved"] = same_folder(folder, saved)

    # A few AdamW steps: each rank takes half of the batch one process takes whole.
    ids, labels = same_inputs(4, (4, 16)), same_inputs(5, (4, 16))
    half = slice(2 * dist.get_rank(), 2 * dist.get_rank() + 2)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (model, ref)]
    result["losses"], result["reference_losses"] = [], []
    for _ in range(3):
        for m, optimizer, batch, losses in ((model, optimizers[0], half, result["losses"]),
                                            (ref, optimizers[1], slice(None), result["reference_losses"])):
            loss = m(ids[batch], labels=labels[batch]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if m is model:
                loss = loss.detach().clone()
                dist.all_reduce(loss, op=dist.ReduceOp.AVG)
            losses.append(loss.item())
    return result


def check_ddp_trainer(folder: Path, out: Path) -> dict:
    model = GPTScratchForCausalLM.from_pretrained(folder)
    args = TrainingArguments(output_dir=str(out / "trainer"), per_device_train_batch_size=4, ddp_backend="gloo",
                             **TRAINER_ARGS)
    trainer = Trainer(model=model, args=args, train_dataset=training_windows(model.config.context_length),
                      data_collator=collate_windows)
    trainer.train()
    trainer.save_model(out / "ddp")
    dist.barrier()
    reloaded = GPTScratchForCausalLM.from_pretrained(out / "ddp")
    return {"losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
            "reloaded_tied": reloaded.lm_head.weight is reloaded.model.tok_emb.weight}


def main() -> None:
    tied, untied, train, out = map(Path, sys.argv[1:5])
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    results = {"tp_tied": check_tensor_parallel(tied, out), "tp_untied": check_tensor_parallel(untied, out),
               "fsdp2": check_fsdp2(tied, out), "ddp": check_ddp_trainer(train, out)}
    if dist.get_rank() == 0:
        (out / "results.json").write_text(json.dumps(results, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
