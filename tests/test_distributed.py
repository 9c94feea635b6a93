"""Two CPU processes (torchrun, gloo) against one: tensor parallelism, FSDP2 saving and training, DDP through Trainer.

One torchrun launch (tests/distributed_worker.py) runs every check and reports what it measured; the tests below
assert on the report. The models are tiny, with an odd vocabulary (so the ranks' vocabulary shards differ in size),
query/key/value biases, and random biases and LayerNorm shifts (GPT-2's initialisation makes them zero, and a bias
added once per rank instead of once would hide).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_uses_whole_prompt, greedy, run_without_gpt_scratch, sharpen, tiny_config
from distributed_worker import TRAINER_ARGS, VOCAB, training_windows
from torch.testing import assert_close
from transformers import Trainer, TrainingArguments

from gpt_scratch import GPTScratchForCausalLM, collate_windows

WORKER = Path(__file__).with_name("distributed_worker.py")


def _model(tied: bool) -> GPTScratchForCausalLM:
    model = GPTScratchForCausalLM(tiny_config(vocab_size=VOCAB, qkv_bias=True, tie_word_embeddings=tied)).eval()
    sharpen(model, model.config.emb_dim)  # continuations that depend on the whole prompt
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The folders the unwrapped models save, and the report of the two-process run that loads them."""
    root = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(0)
    folders = {name: root / name for name in ("tied", "untied", "train")}
    _model(tied=True).save_pretrained(folders["tied"])
    _model(tied=False).save_pretrained(folders["untied"])
    GPTScratchForCausalLM(tiny_config(vocab_size=VOCAB, tie_word_embeddings=True)).save_pretrained(folders["train"])
    out = root / "out"
    out.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
         *map(str, folders.values()), str(out)],
        cwd=WORKER.parent, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return folders, out, json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("kind", ["tp_tied", "tp_untied"])
def test_tensor_parallel_equals_one_process(run, kind):
    report = run[2][kind]
    # Both ends of the tie hold the same vocabulary shard (the fix for a tied head whose logits were off by 1.7).
    assert report["head_sharded"] and report["embedding_sharded"]
    assert report["head_is_embedding"] is (kind == "tp_tied")
    assert report["logits_max_diff"] < 1e-5
    assert report["train_logits_max_diff"] < 1e-5
    for name, diff in report["bias_grad_max_diff"].items():
        assert diff < 1e-5, name
    assert report["greedy"] == report["greedy_reference"] == report["greedy_uncached"]
    assert report["greedy_changed_prompt"] != report["greedy_reference"], "the continuation ignores the prompt's start"


@pytest.mark.parametrize("kind", ["tp_tied", "tp_untied"])
def test_tensor_parallel_model_saves_a_normal_folder(run, kind):
    saved = run[2][kind]["saved"]
    assert saved["names"] == saved["other_names"]
    assert saved["differ"] == [], "the folder saved from two TP ranks differs from the unwrapped model's"


def test_fsdp2_saves_our_code_and_the_unwrapped_models_folder(run):
    report = run[2]["fsdp2"]
    assert report["class"] == "FSDPGPTScratchForCausalLM"  # fully_shard swapped the class, as Trainer's FSDP does
    assert report["saved"]["names"] == report["saved"]["other_names"]
    assert report["saved"]["differ"] == []  # byte for byte: code, config (auto_map), weights (the tie kept)


def test_fsdp2_folder_loads_as_remote_code(run, tmp_path):
    folders, out, _ = run
    script = """
        import sys
        import torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert model.lm_head.weight is model.model.tok_emb.weight
        torch.save(model(torch.arange(10)[None]).logits, sys.argv[2])
    """
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = run_without_gpt_scratch(script, out / "fsdp2", tmp_path / "logits.pt", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = GPTScratchForCausalLM.from_pretrained(folders["tied"])(torch.arange(10)[None]).logits
    assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=0, atol=0)


def test_fsdp2_training_equals_one_process(run):
    report = run[2]["fsdp2"]
    assert_close(report["losses"], report["reference_losses"], rtol=1e-5, atol=1e-5)
    assert report["losses"][-1] < report["losses"][0]


def test_ddp_trainer_equals_one_process(run, tmp_path):
    folders, _, report = run
    model = GPTScratchForCausalLM.from_pretrained(folders["train"])
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, **TRAINER_ARGS)
    trainer = Trainer(model=model, args=args, train_dataset=training_windows(model.config.context_length),
                      data_collator=collate_windows)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12
    assert_close(report["ddp"]["losses"], losses, rtol=1e-4, atol=1e-4)
    assert report["ddp"]["reloaded_tied"]


def test_base_model_plan_is_what_serving_engines_accept():
    """vLLM's and SGLang's transformers backends read the base model's plan (AutoModel) and swap in their own parallel
    Linear layers; SGLang refuses any other style. The LM's own plan adds the head and the embedding it is tied to."""
    model = GPTScratchForCausalLM(tiny_config(vocab_size=VOCAB, tie_word_embeddings=True))
    modules = dict(model.model.named_modules())
    for pattern, style in model.model.tp_plan.items():
        assert style in ("colwise", "rowwise"), (pattern, style)
        matched = [m for name, m in modules.items() if re.fullmatch(pattern.replace("*", r"\d+"), name)]
        assert len(matched) == model.config.n_layers and all(isinstance(m, torch.nn.Linear) for m in matched), pattern
    assert model.tp_plan["lm_head"] == "colwise_gather_output"
    assert model.tp_plan["model.tok_emb"] == "embedding_rowwise"  # the same vocabulary shard as the tied head


def test_device_map_with_disk_offload_generates_the_same_tokens(tmp_path):
    """Too big for memory: device_map="auto" keeps what fits (the tied embedding and head) and offloads the rest to
    disk, one TransformerBlock at a time (`_no_split_modules`)."""
    model = GPTScratchForCausalLM(tiny_config(qkv_bias=True, tie_word_embeddings=True))  # 6.6 MB, 6.4 the embedding
    sharpen(model, model.config.emb_dim)
    model.save_pretrained(tmp_path / "model")
    reference = GPTScratchForCausalLM.from_pretrained(tmp_path / "model").eval()
    offloaded = GPTScratchForCausalLM.from_pretrained(tmp_path / "model", device_map="auto",
                                                      max_memory={"cpu": 6_500_000}, offload_folder=tmp_path / "off")
    assert offloaded.hf_device_map["model.tok_emb"] == offloaded.hf_device_map["lm_head"] == "cpu"
    assert "disk" in offloaded.hf_device_map.values()
    prompt = torch.randint(0, 50257, (1, 8))
    assert_uses_whole_prompt(reference, prompt)
    assert greedy(offloaded.eval(), prompt) == greedy(reference, prompt)
