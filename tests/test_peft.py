"""PEFT's LoRA on our model: default target modules, "all-linear", train -> save -> reload -> merge."""

import subprocess
import sys

import pytest
import torch
from conftest import THE_VERDICT, greedy, sharpen, tiny_config
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from gpt_scratch import LORA_TARGET_MODULES, GPTScratchForCausalLM, TokenWindowDataset, collate_windows

LINEAR_NAMES = {"W_query", "W_key", "W_value", "out_proj", "expand", "project"}


def adapted(model) -> set[str]:
    """The last name of every module that holds a LoRA adapter."""
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}


@pytest.fixture
def base(tmp_path):
    model = GPTScratchForCausalLM(tiny_config())
    sharpen(model, 32)
    model.save_pretrained(tmp_path / "base")
    # Loaded from its folder, as a user's base model is: the adapter's config then names the folder.
    return AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval(), tmp_path / "base"


def test_lora_needs_no_target_modules_and_all_linear_skips_the_head(base):
    model, _ = base
    assert adapted(get_peft_model(GPTScratchForCausalLM(model.config), LoraConfig(r=4))) == set(LORA_TARGET_MODULES)
    everything = get_peft_model(GPTScratchForCausalLM(model.config), LoraConfig(r=4, target_modules="all-linear"))
    assert adapted(everything) == LINEAR_NAMES  # every Linear of the blocks; lm_head stays whole


@pytest.mark.parametrize("order", ["gpt_scratch first", "peft first"])
def test_lora_defaults_register_without_importing_peft(order):
    # `import gpt_scratch` does not import PEFT (0.16 s); LoRA's defaults appear whichever of the two comes first.
    imports = ["import gpt_scratch", "import peft"] if order == "gpt_scratch first" else ["import peft",
                                                                                          "import gpt_scratch"]
    script = "\n".join([
        "import sys",
        imports[0],
        "print('peft' in sys.modules)",
        imports[1],
        "from peft import LoraConfig, get_peft_model",
        "from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM",
        "model = GPTScratchForCausalLM(GPTScratchConfig(vocab_size=64, context_length=8, emb_dim=16, n_heads=2,"
        " n_layers=1))",
        "print(sorted({n.rsplit('.', 1)[-1] for n, m in get_peft_model(model, LoraConfig(r=2)).named_modules()"
        " if hasattr(m, 'lora_A')}))",
    ])
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = run.stdout.split("\n")
    assert lines[0] == ("False" if order == "gpt_scratch first" else "True")
    assert lines[1] == str(sorted(LORA_TARGET_MODULES))


def test_train_save_reload_and_merge(base, tmp_path):
    model, folder = base
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8,
                                                         target_modules="all-linear"))
    batch = collate_windows([TokenWindowDataset.from_file(THE_VERDICT, 32, stride=32, progress=False)[i]
                             for i in range(4)])
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(4):
        loss = peft_model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    peft_model.eval()
    ids = batch["input_ids"][:2, :12]
    with torch.no_grad():
        trained = peft_model(ids).logits
        with peft_model.disable_adapter():
            assert not torch.allclose(peft_model(ids).logits, trained, atol=1e-3)  # the adapter changed something
    peft_model.save_pretrained(tmp_path / "adapter")

    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), tmp_path / "adapter").eval()
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter").eval()
    merged = auto.merge_and_unload()
    assert type(merged) is GPTScratchForCausalLM and not adapted(merged)
    merged.save_pretrained(tmp_path / "merged")
    merged_reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        for other in (reloaded, merged, merged_reloaded):
            torch.testing.assert_close(other(ids).logits, trained, rtol=1e-5, atol=5e-5)  # merging rounds
    assert greedy(merged_reloaded, ids, 8) == greedy(reloaded, ids, 8)
