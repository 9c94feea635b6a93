"""save_pretrained / from_pretrained: safetensors only, tying, sharding, dtypes, clear errors, remote code."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import greedy, run_without_gpt_scratch, sharpen, tiny_config
from safetensors import safe_open
from torch.testing import assert_close
from transformers import AutoModel, AutoModelForCausalLM

from gpt_scratch import GPTScratchForCausalLM, GPTScratchModel, quantize
from gpt_scratch.modeling_gpt_scratch import Int8Linear


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_saves_safetensors_config_with_auto_map_and_code(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    assert _files(tmp_path) == ["config.json", "configuration_gpt_scratch.py", "generation_config.json",
                                "model.safetensors", "modeling_gpt_scratch.py"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt_scratch"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_gpt_scratch.GPTScratchConfig",
        "AutoModel": "modeling_gpt_scratch.GPTScratchModel",
        "AutoModelForCausalLM": "modeling_gpt_scratch.GPTScratchForCausalLM",
        "AutoModelForSequenceClassification": "modeling_gpt_scratch.GPTScratchForSequenceClassification",
    }
    input_ids = torch.randint(0, 50257, (2, 9))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is GPTScratchForCausalLM
    assert torch.equal(loaded(input_ids).logits, tiny_model(input_ids).logits)
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is GPTScratchModel
    assert torch.equal(base.tok_emb.weight, tiny_model.model.tok_emb.weight)


def test_tied_weights_save_once_and_retie_on_load(tmp_path):
    model = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True, qkv_bias=True))
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "model.tok_emb.weight" in keys and "lm_head.weight" not in keys
    loaded = GPTScratchForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.tok_emb.weight
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_untied_head_is_saved(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert torch.equal(f.get_tensor("lm_head.weight"), tiny_model.lm_head.weight)


def test_sharded_checkpoint_round_trips(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path, max_shard_size="2MB")
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 1
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    loaded = GPTScratchForCausalLM.from_pretrained(tmp_path)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_round_trips(tmp_path, tiny_model, dtype):
    tiny_model.to(dtype).save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert f.get_tensor("model.tok_emb.weight").dtype == dtype
    loaded = GPTScratchForCausalLM.from_pretrained(tmp_path, dtype=dtype)
    assert loaded.dtype == dtype
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    input_ids = torch.randint(0, 50257, (1, 5))
    assert loaded(input_ids).logits.dtype == dtype


def test_weights_that_do_not_fit_the_config_name_file_and_tensor(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["emb_dim"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model\.safetensors: tensor '[\w.]+' has shape \(\d+, 32\), "
                                         r"but the config needs \(\d+, 64\)"):
        GPTScratchForCausalLM.from_pretrained(tmp_path)


def test_truncated_or_corrupt_safetensors_name_the_file(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors: truncated: tensor '[\w.]+' ends at byte"):
        GPTScratchForCausalLM.from_pretrained(tmp_path)
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}" + data[16:])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        GPTScratchForCausalLM.from_pretrained(tmp_path)


# Saves a sharpened tiny model (continuations that depend on the whole prompt) with the interpreter given, which may
# run another transformers release (.ci/run points GPT_SCRATCH_SAVING_PYTHON at the other virtual environment).
SAVE_SCRIPT = """
    import sys

    import torch
    import transformers
    from conftest import sharpen, tiny_config

    from gpt_scratch import GPTScratchForCausalLM

    folder = sys.argv[1]
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True, qkv_bias=True)).eval()
    sharpen(model, model.config.emb_dim)
    model.save_pretrained(folder)
    input_ids = torch.randint(0, 50256, (2, 6))
    generated = model.generate(input_ids, max_new_tokens=8, do_sample=False, pad_token_id=50256)
    with torch.no_grad():
        logits = model(input_ids).logits
    torch.save({"input_ids": input_ids, "logits": logits, "generated": generated,
                "transformers": transformers.__version__}, folder + "/expected.pt")
    """

REMOTE_SCRIPT = """
    import sys

    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    folder = sys.argv[1]
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(AutoConfig.from_pretrained(folder, trust_remote_code=True)).__name__ == "GPTScratchConfig"
    assert type(AutoModel.from_pretrained(folder, trust_remote_code=True)).__name__ == "GPTScratchModel"
    expected = torch.load(folder + "/expected.pt")
    with torch.no_grad():
        logits = model(expected["input_ids"]).logits
    torch.testing.assert_close(logits, expected["logits"], atol=1e-6, rtol=0)
    for use_cache in (True, False):
        generated = model.generate(expected["input_ids"], max_new_tokens=8, do_sample=False, pad_token_id=50256,
                                   use_cache=use_cache)
        assert torch.equal(generated, expected["generated"]), (use_cache, generated, expected["generated"])
    changed = expected["input_ids"].clone()
    changed[:, 0] += 1
    assert not torch.equal(model.generate(changed, max_new_tokens=8, do_sample=False, pad_token_id=50256)[:, 6:],
                           expected["generated"][:, 6:]), "the test model ignores the start of its prompt"
    print(f"REMOTE OK: saved with transformers {expected['transformers']}, loaded with {transformers.__version__}")
    """


def test_loads_with_trust_remote_code_where_gpt_scratch_is_not_installed(tmp_path):
    folder = tmp_path / "model"
    saver = os.environ.get("GPT_SCRATCH_SAVING_PYTHON", sys.executable)
    saved = subprocess.run([saver, "-c", textwrap.dedent(SAVE_SCRIPT), str(folder)], cwd=Path(__file__).parent,
                           capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0, saved.stderr[-3000:]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = run_without_gpt_scratch(REMOTE_SCRIPT, folder, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE OK" in result.stdout
    print(result.stdout)  # which transformers saved and which loaded, for CI's log
    assert (tmp_path / "hf_home" / "modules" / "transformers_modules").is_dir()


def test_from_pretrained_config_override_keeps_weights(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    loaded = GPTScratchForCausalLM.from_pretrained(tmp_path, drop_rate=0.2)
    assert loaded.config.drop_rate == 0.2
    assert_close(loaded.lm_head.weight, tiny_model.lm_head.weight)


INT8_REMOTE_SCRIPT = """
    import sys

    import torch
    from transformers import AutoModelForCausalLM

    folder = sys.argv[1]
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model.lm_head).__name__ == "Int8Linear" and model.lm_head.weight.dtype == torch.int8
    expected = torch.load(folder + "/expected.pt")
    with torch.no_grad():
        assert torch.equal(model(expected["input_ids"]).logits, expected["logits"])
    print("REMOTE INT8 OK")
    """


def test_int8_weights_save_reload_and_load_as_remote_code(tmp_path):
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True, qkv_bias=True)).eval()
    sharpen(model, model.config.emb_dim)
    model = model.to(torch.bfloat16)
    ids = torch.randint(0, 50256, (2, 9))
    with torch.no_grad():
        bf16 = model(ids).logits.float()
    assert quantize(model, "int8") is model
    linears = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, Int8Linear))]
    assert len(linears) == 2 * 6 + 1 and all(isinstance(m, Int8Linear) for m in linears)
    assert model.config.quantization == "int8" and not model.config.tie_word_embeddings
    assert model.model.tok_emb.weight.dtype == torch.bfloat16  # the lookup table stays in the model's dtype
    with torch.no_grad():
        int8 = model(ids).logits
    error = int8.float() - bf16  # about 1/254 of each weight's row, through 2 sharpened blocks
    assert error.std() < 0.05 * bf16.std() and error.abs().max() < 0.1 * bf16.abs().max()
    with pytest.raises(ValueError, match="quantized already"):
        quantize(model, "int8")
    with pytest.raises(ValueError, match="unknown quantization"):
        quantize(GPTScratchForCausalLM(tiny_config()), "int4")
    with pytest.raises(TypeError, match="takes a gpt_scratch model, got Linear"):
        quantize(torch.nn.Linear(4, 4), "int8")

    folder = tmp_path / "int8"
    model.save_pretrained(folder)
    with safe_open(folder / "model.safetensors", "pt") as f:
        assert f.get_slice("lm_head.weight").get_dtype() == "I8"
        assert f.get_slice("model.trf_blocks.0.ff.layers.expand.weight").get_dtype() == "I8"
    reloaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, int8)
    assert greedy(reloaded, ids, 6) == greedy(model, ids, 6)
    torch.save({"input_ids": ids, "logits": int8}, folder / "expected.pt")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = run_without_gpt_scratch(INT8_REMOTE_SCRIPT, folder, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE INT8 OK" in result.stdout
