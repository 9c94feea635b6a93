"""`gpt-scratch train`: the loadable folder it writes, resumption on the same loss curve, and two processes under
torchrun (gloo, CPU) giving one process's curve on the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import THE_VERDICT
from transformers import AutoModelForCausalLM, TrainerCallback

from gpt_scratch.cli import main
from gpt_scratch.training import build_model, train

# Tied: the 50,257-token embedding is the bulk of a tiny model; stored once, checkpoints stay small.
TINY = ["--n-layers", "2", "--emb-dim", "32", "--n-heads", "4", "--context-length", "64", "--tie-embeddings"]
RUN = ["--max-steps", "4", "--eval-steps", "2", "--save-steps", "2", "--eval-batches", "1", "--sample-tokens", "4"]


class CrashBeforeStep(TrainerCallback):
    """A run killed after the checkpoint of step `step` was written (as Ctrl-C or a lost machine would)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def metrics(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_train_writes_a_loadable_folder_and_resume_continues_the_same_curve(tmp_path, capsys, caplog):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(THE_VERDICT), str(a), *TINY, *RUN]) == 0
    out, err = capsys.readouterr()
    assert "Token indices sequence length" not in err + caplog.text  # tokenize_file, not the tokenizer's warning
    assert "trained 4 steps" in out and "tokens/s" in err  # the progress bar shows loss and tokens/s
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md", "loss.png",
            "metrics.json", "modeling_gpt_scratch.py"} <= {p.name for p in a.iterdir()}
    assert (a / "loss.png").read_bytes().startswith(b"\x89PNG")
    run = metrics(a)
    assert run["steps"] == 4 and run["tokens_seen"] == 4 * 2 * 64 and run["global_batch_size"] == 2
    assert [e["step"] for e in run["evaluations"]] == [0, 2, 4]
    assert all(e["sample"].startswith("Every effort moves you") for e in run["evaluations"])
    assert run["validation_loss"] == run["evaluations"][-1]["validation_loss"] and run["tokens_per_second"] > 0
    assert run["evaluations"][-1]["train_loss"] < run["evaluations"][0]["train_loss"]
    card = (a / "README.md").read_text()
    assert "the-verdict.txt (5,145 tokens" in card and "| steps | 4 |" in card and "| tokens seen | 512 |" in card
    assert f"| final validation loss | {round(run['validation_loss'], 4)} |" in card
    model = AutoModelForCausalLM.from_pretrained(a)
    assert model.config.n_layers == 2 and type(model).__name__ == "GPTScratchForCausalLM"

    # The same run, killed before step 3 (after checkpoint-2), then resumed from the command line.
    model, tokenizer = build_model(n_layers=2, emb_dim=32, n_heads=4, context_length=64, tie_word_embeddings=True)
    with pytest.raises(KeyboardInterrupt):
        train(model, THE_VERDICT, b, tokenizer=tokenizer, max_steps=4, eval_steps=2, save_steps=2, eval_batches=1,
              sample_tokens=4, callbacks=[CrashBeforeStep(3)], progress=False)
    assert not b.exists()  # written whole or not at all
    assert main(["train", str(THE_VERDICT), str(b), *TINY, *RUN, "--resume"]) == 0
    resumed = metrics(b)
    assert resumed["resumed_from_step"] == 2
    assert resumed["losses"] == run["losses"]  # every step's loss, dropout included (RNG states restored)
    assert resumed["evaluations"] == run["evaluations"]  # both losses and the samples at each evaluation
    torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(b).state_dict(),
                               AutoModelForCausalLM.from_pretrained(a).state_dict())

    capsys.readouterr()
    assert main(["train", str(THE_VERDICT), str(a), *TINY, *RUN]) == 1  # OUT exists: refused before any work
    err = capsys.readouterr().err.strip()
    assert err == f"gpt-scratch train: error: {a} exists; pass --overwrite (overwrite=True) to replace it"


def test_two_processes_under_torchrun_give_one_process_curve(tmp_path):
    # No dropout: each process draws its own dropout masks, so only the deterministic part can match exactly.
    args = [str(THE_VERDICT), *TINY, "--drop-rate", "0", "--max-steps", "3", "--eval-steps", "3", "--eval-batches",
            "1", "--sample-tokens", "1"]
    assert main(["train", args[0], str(tmp_path / "one"), *args[1:], "--batch-size", "4"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "gpt_scratch",
         "train", args[0], str(tmp_path / "two"), *args[1:], "--batch-size", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained 3 steps") == 1  # one process reports and writes
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["global_batch_size"] == two["global_batch_size"] == 4 and one["tokens_seen"] == two["tokens_seen"]
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one["losses"]), rtol=1e-5, atol=1e-5)
    for name in ("train_loss", "validation_loss"):
        torch.testing.assert_close(torch.tensor([e[name] for e in two["evaluations"]]),
                                   torch.tensor([e[name] for e in one["evaluations"]]), rtol=1e-5, atol=1e-5)


def test_build_model_defaults_to_the_books_chapter_5_config_and_refuses_sizes_with_init(tmp_path):
    with torch.device("meta"):
        model, tokenizer = build_model()
    assert (model.config.context_length, model.config.emb_dim, model.config.n_layers) == (256, 768, 12)
    assert not model.config.qkv_bias and not model.config.tie_word_embeddings and tokenizer.model_max_length == 256
    with pytest.raises(ValueError, match="brings its own configuration; drop n_layers"):
        build_model(init=tmp_path, n_layers=2)
