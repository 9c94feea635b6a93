"""Checkpoint files in and out: GPT-2 folders and Hub ids, the book's .pth, our folders, `gpt-scratch convert`.

Parity (logits against GPT2LMHeadModel / the book's GPTModel from the same files), exact round trips,
byte-for-byte equality with `save_pretrained`, atomic output and errors that name the problem. The Hub is
the loopback FakeHub, driven from subprocesses (HF_ENDPOINT is read at import).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import hf_pair, tiny_config
from fake_hub import FakeHub, fake_hub_fixture, hub_env, network_guard_fixture  # noqa: F401 (fixtures)
from llms_from_scratch.ch04 import GPTModel
from safetensors import safe_open
from safetensors.torch import save_file
from torch.testing import assert_close
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

import gpt_scratch.checkpoint
from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, GPTScratchModel
from gpt_scratch.checkpoint import SafetensorsWriter, convert_checkpoint
from gpt_scratch.cli import main
from gpt_scratch.convert import config_to_book

IDS = torch.tensor([[464, 3290, 318, 257, 1332, 13], [50256, 11, 262, 3797, 286, 1110]])
CLI = Path(sys.executable).parent / "gpt-scratch"


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def cli(*args) -> int:
    return main([str(a) for a in args])


def gpt2_folder(folder: Path, tie: bool = True, **save_kwargs) -> GPT2LMHeadModel:
    """A random transformers GPT-2 (biases and LayerNorms randomised too) saved with save_pretrained."""
    hf, _ = hf_pair(tiny_config(qkv_bias=True, tie_word_embeddings=tie))
    if not tie:
        with torch.no_grad():
            hf.lm_head.weight.normal_()
    hf.save_pretrained(folder, **save_kwargs)
    return hf


@pytest.fixture
def gpt2_dir(tmp_path) -> Path:
    gpt2_folder(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def book_model(qkv_bias: bool = False) -> tuple[GPTModel, dict]:
    book_cfg = config_to_book(tiny_config(qkv_bias=qkv_bias))
    book = GPTModel(book_cfg).eval()
    with torch.no_grad():  # the book initialises LayerNorm to 1/0: randomise so a swap cannot hide
        for name, p in book.named_parameters():
            if name.endswith(("scale", "shift")):
                p.add_(torch.randn_like(p) * 0.1)
    return book, book_cfg


# ----- from_pretrained on a GPT-2 checkpoint --------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
def test_from_pretrained_reads_a_gpt2_folder_with_gpt2s_logits(tmp_path, tie):
    gpt2_folder(tmp_path, tie=tie)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path)
    ours = GPTScratchForCausalLM.from_pretrained(tmp_path)

    assert (ours.config.qkv_bias, ours.config.tie_word_embeddings, ours.dtype) == (True, tie, torch.float32)
    assert (ours.lm_head.weight is ours.model.tok_emb.weight) == tie
    assert ours.config.name_or_path == str(tmp_path) and not ours.training
    assert_close(ours(IDS).logits, hf(IDS).logits, atol=1e-4, rtol=0)
    generated = ours.generate(IDS[:1], max_new_tokens=10, do_sample=False)
    assert torch.equal(generated, hf.generate(IDS[:1], max_new_tokens=10, do_sample=False, pad_token_id=50256))


def test_from_pretrained_reads_a_gpt2_folder_with_a_small_vocabulary(tmp_path):
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_positions=32, n_embd=32, n_layer=2, n_head=4)).eval()
    hf.save_pretrained(tmp_path)
    ours = GPTScratchForCausalLM.from_pretrained(tmp_path)
    assert ours.config.vocab_size == 1000 and ours.config.eos_token_id is None
    ids = torch.randint(0, 1000, (2, 9))
    assert_close(ours(ids).logits, hf(ids).logits, atol=1e-4, rtol=0)


def test_from_pretrained_gpt2_takes_the_usual_arguments(gpt2_dir):
    hf = GPT2LMHeadModel.from_pretrained(gpt2_dir)
    ours, info = GPTScratchForCausalLM.from_pretrained(
        gpt2_dir, dtype=torch.bfloat16, drop_rate=0.2, attn_implementation="eager", output_loading_info=True
    )
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert (ours.dtype, ours.config.drop_rate, ours.config._attn_implementation) == (torch.bfloat16, 0.2, "eager")
    assert torch.equal(ours.model.trf_blocks[1].att.W_value.weight,
                       hf.transformer.h[1].attn.c_attn.weight[:, 64:].t().to(torch.bfloat16))
    base = GPTScratchModel.from_pretrained(gpt2_dir)
    assert torch.equal(base.tok_emb.weight, hf.transformer.wte.weight)


def test_from_pretrained_gpt2_sharded_and_pickled(tmp_path):
    hf = gpt2_folder(tmp_path / "sharded", max_shard_size="2MB")
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tmp_path / "sharded" / "config.json").read_text())
    torch.save(hf.state_dict(), pickled / "pytorch_model.bin")  # old checkpoints, read with weights_only=True
    shards = tmp_path / "pickled-shards"
    shards.mkdir()
    (shards / "config.json").write_text((pickled / "config.json").read_text())
    weight_map = {}
    for i, part in enumerate(("transformer.h.0.", "transformer.h.1.", "")):
        name = f"pytorch_model-0000{i + 1}-of-00003.bin"
        shard = {k: v for k, v in hf.state_dict().items() if k.startswith(part) and k not in weight_map}
        torch.save(shard, shards / name)
        weight_map.update(dict.fromkeys(shard, name))
    (shards / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))

    for folder in (tmp_path / "sharded", pickled, shards):
        assert_close(GPTScratchForCausalLM.from_pretrained(folder)(IDS).logits, hf(IDS).logits, atol=1e-4, rtol=0)


def test_from_pretrained_gpt2_refuses_a_config_that_does_not_fit(gpt2_dir):
    with pytest.raises(ValueError, match=r"does not fit the weights: model\.tok_emb\.weight: the config needs shape "
                                         r"\(50257, 64\), the weights have \(50257, 32\)"):
        GPTScratchForCausalLM.from_pretrained(gpt2_dir, config=tiny_config(emb_dim=64, qkv_bias=True,
                                                                            tie_word_embeddings=True))
    config = json.loads((gpt2_dir / "config.json").read_text())
    (gpt2_dir / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    with pytest.raises(ValueError, match=r"config does not fit the weights: it says n_layers=3, the weights have 2"):
        GPTScratchForCausalLM.from_pretrained(gpt2_dir)


def test_from_pretrained_gpt2_without_the_package_says_what_is_needed(gpt2_dir, monkeypatch):
    # What the remote code (shipped beside the weights) meets where gpt_scratch is not installed: no loader.
    monkeypatch.setattr(GPTScratchForCausalLM, "checkpoint_loader", None)
    with pytest.raises(ValueError, match=r"config.json has model_type 'gpt2', not 'gpt_scratch': a transformers GPT-2 "
                                         r"checkpoint, which GPTScratchForCausalLM.from_pretrained converts where the "
                                         r"gpt_scratch package is installed \(pip install gpt-scratch\)") as raised:
        GPTScratchForCausalLM.from_pretrained(gpt2_dir)
    assert str(gpt2_dir) in str(raised.value)


# ----- gpt-scratch convert: GPT-2 -> ours -> GPT-2 ---------------------------------------------------------


@pytest.mark.parametrize("shard", [None, "2MB"])
def test_convert_gpt2_gives_what_save_pretrained_gives_byte_for_byte(gpt2_dir, tmp_path, shard):
    reference = tmp_path / "reference"
    GPTScratchForCausalLM.from_pretrained(gpt2_dir).save_pretrained(reference, **({"max_shard_size": shard}
                                                                                  if shard else {}))
    extra = ["--max-shard-size", shard] if shard else []

    assert cli("convert", gpt2_dir, tmp_path / "out", *extra) == 0

    out, ref = files(tmp_path / "out"), files(reference)
    assert out.keys() == ref.keys()
    for name in out:
        if name.endswith((".safetensors", ".py", "index.json", "generation_config.json")):
            assert out[name] == ref[name], name
    assert json.loads(out["config.json"]) == json.loads(ref["config.json"])
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert type(loaded) is GPTScratchForCausalLM
    assert_close(loaded(IDS).logits, GPT2LMHeadModel.from_pretrained(gpt2_dir)(IDS).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("tie", [True, False])
def test_gpt2_ours_gpt2_round_trip_is_bit_identical(tmp_path, tie):
    gpt2_folder(tmp_path / "gpt2", tie=tie)
    assert cli("convert", tmp_path / "gpt2", tmp_path / "ours") == 0
    assert cli("convert", tmp_path / "ours", tmp_path / "back", "--to", "hf-gpt2") == 0

    assert (tmp_path / "back" / "model.safetensors").read_bytes() == (tmp_path / "gpt2" / "model.safetensors"
                                                                      ).read_bytes()
    original = json.loads((tmp_path / "gpt2" / "config.json").read_text())
    # The same config, plus GPT-2's legacy n_ctx (as OpenAI's config.json has it), which llama.cpp's converter reads.
    assert json.loads((tmp_path / "back" / "config.json").read_text()) == {**original, "n_ctx": original["n_positions"]}
    _, info = GPT2LMHeadModel.from_pretrained(tmp_path / "back", output_loading_info=True)
    assert all(not v for v in info.values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_convert_to_half_precision(gpt2_dir, tmp_path, dtype):
    name = str(dtype).removeprefix("torch.")
    assert cli("convert", gpt2_dir, tmp_path / "ours", "--dtype", name) == 0
    assert cli("convert", tmp_path / "ours", tmp_path / "hf", "--to", "hf-gpt2", "--max-shard-size", "1MB") == 0

    original = {k: v.to(dtype) for k, v in tensors(gpt2_dir).items()}
    assert_same_tensors(tensors(tmp_path / "hf"), original)
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["dtype"] == name
    ours = GPTScratchForCausalLM.from_pretrained(tmp_path / "ours")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf")
    assert ours.dtype == hf.dtype == dtype
    assert torch.equal(ours(IDS).logits, GPTScratchForCausalLM.from_pretrained(gpt2_dir, dtype=dtype)(IDS).logits)


def test_safetensors_writer_writes_what_save_file_writes(tmp_path):
    entries = {"b.weight": torch.randn(3, 5), "a.bias": torch.randn(7), "c": torch.randn(2, 2).bfloat16(),
               "d": torch.randn(4).half()}
    save_file(entries, tmp_path / "reference.safetensors", metadata={"format": "pt"})
    specs = {k: (tuple(v.shape), v.dtype) for k, v in entries.items()}
    writer = SafetensorsWriter(tmp_path / "ours.safetensors", specs, {"format": "pt"})
    for key in writer.order:
        writer.write(key, entries[key])
    writer.close()
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "reference.safetensors").read_bytes()


# ----- the book's GPTModel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_book_pth_converts_to_ours_and_to_gpt2_with_the_books_logits(tmp_path, qkv_bias):
    book, book_cfg = book_model(qkv_bias)
    torch.save(book.state_dict(), tmp_path / "model.pth")
    (tmp_path / "cfg.json").write_text(json.dumps(book_cfg))

    assert cli("convert", tmp_path / "model.pth", tmp_path / "ours", "--config", tmp_path / "cfg.json") == 0
    assert cli("convert", tmp_path / "model.pth", tmp_path / "hf", "--from", "book", "--to", "hf-gpt2",
               "--config", json.dumps(book_cfg)) == 0

    with torch.no_grad():
        expected = book(IDS)
    ours = GPTScratchForCausalLM.from_pretrained(tmp_path / "ours")
    assert (ours.config.qkv_bias, ours.config.tie_word_embeddings) == (qkv_bias, False)
    assert_close(ours(IDS).logits, expected, atol=1e-4, rtol=0)
    assert_close(GPT2LMHeadModel.from_pretrained(tmp_path / "hf")(IDS).logits, expected, atol=1e-4, rtol=0)


def test_book_ours_book_round_trip_is_exact(tmp_path):
    book, book_cfg = book_model(qkv_bias=True)
    # The book's chapter 5 checkpoint: model and optimizer state in one dict.
    optimizer = torch.optim.AdamW(book.parameters())
    torch.save({"model_state_dict": book.state_dict(), "optimizer_state_dict": optimizer.state_dict()},
               tmp_path / "model_and_optimizer.pth")

    assert cli("convert", tmp_path / "model_and_optimizer.pth", tmp_path / "ours", "--config",
               json.dumps({"n_heads": book_cfg["n_heads"], "drop_rate": book_cfg["drop_rate"]})) == 0
    assert cli("convert", tmp_path / "ours", tmp_path / "back", "--to", "book") == 0
    assert cli("convert", tmp_path / "back", tmp_path / "ours-again") == 0  # a book folder: auto, no --config

    back = torch.load(tmp_path / "back" / "model.pth", weights_only=True)
    assert_same_tensors(back, book.state_dict())
    assert json.loads((tmp_path / "back" / "config.json").read_text()) == book_cfg
    GPTModel(book_cfg).load_state_dict(back, strict=True)
    assert files(tmp_path / "ours-again") == files(tmp_path / "ours")
    # The pre-1.6 (not zip) format cannot be memory-mapped: it is read whole, with weights_only=True all the same.
    torch.save(book.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert cli("convert", tmp_path / "legacy.pth", tmp_path / "from-legacy", "--config", json.dumps(book_cfg)) == 0
    assert files(tmp_path / "from-legacy") == files(tmp_path / "ours")


def test_book_pth_is_never_unpickled_as_objects(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    book, book_cfg = book_model()
    torch.save({**book.state_dict(), "extra": Exploit()}, tmp_path / "model.pth")

    with pytest.raises(ValueError, match=r"model\.pth: holds Python objects besides tensors \(\w+\), which "
                                         r"torch\.load\(weights_only=True\) refuses to unpickle; a pickle can run"):
        convert_checkpoint(tmp_path / "model.pth", tmp_path / "out", book_config_spec="gpt2", progress=False)
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "spec,message",
    [
        (None, r"do not say how many attention heads .* pass its config \(--config\): a preset \(gpt2, "),
        ("gpt2-medium", r"config 'gpt2-medium' does not fit the weights: it has emb_dim=1024, but tok_emb\.weight "
                        r"says emb_dim=32"),
        ('{"n_heads": 4, "context_length": 1024}', r"it has context_length=1024, but pos_emb\.weight says "
                                                   r"context_length=64"),
        ('{"n_heads": 4, "qkv_bias": true}', r"it has qkv_bias=True, but trf_blocks\.0\.att\.W_query\.bias says "
                                             r"qkv_bias=False"),
        ('{"context_length": 64}', r"has no n_heads, which the weights cannot tell"),
        ('{"n_heads": 4, "n_embd": 32}', r"unknown keys in the book's config: \['n_embd'\]"),
        ('{"n_heads": 4,', r"--config is not valid JSON"),
        ("gpt3", r"--config 'gpt3': not a preset \(gpt2, gpt2-medium, .*\), a JSON file or a JSON object"),
    ],
)
def test_book_config_errors_name_the_problem(tmp_path, spec, message):
    book, _ = book_model(qkv_bias=False)
    torch.save(book.state_dict(), tmp_path / "model.pth")
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(tmp_path / "model.pth", tmp_path / "out", book_config_spec=spec, progress=False)


# ----- errors, refusals and atomic output ------------------------------------------------------------------


def _edit_gpt2(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    sd = tensors(folder)
    edit(sd)
    save_file(sd, path, metadata={"format": "pt"})


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda sd: sd.pop("transformer.h.1.mlp.c_fc.bias"),
         r"missing keys: \['transformer\.h\.1\.mlp\.c_fc\.bias'\]"),
        (lambda sd: sd.update({"transformer.h.0.extra.weight": torch.zeros(2)}),
         r"unexpected keys: \['transformer\.h\.0\.extra\.weight'\]"),
        (lambda sd: sd.update({"transformer.h.0.attn.c_proj.weight": torch.zeros(32, 16)}),
         r"transformer\.h\.0\.attn\.c_proj\.weight: expected shape \(32, 32\), found \(32, 16\)"),
    ],
)
def test_weights_that_do_not_match_are_listed(gpt2_dir, tmp_path, capsys, edit, message):
    _edit_gpt2(gpt2_dir, edit)
    assert cli("convert", gpt2_dir, tmp_path / "out") == 1
    assert capsys.readouterr().err.startswith("gpt-scratch convert: error: ")
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(gpt2_dir, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_unreadable_files_and_unknown_formats_are_named(gpt2_dir, tmp_path, capsys):
    weights = gpt2_dir / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert cli("convert", gpt2_dir, tmp_path / "out") == 1
    assert f"{weights}: not a readable safetensors file" in capsys.readouterr().err

    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert cli("convert", tmp_path / "llama", tmp_path / "out") == 1
    assert "unknown format: config.json has model_type 'llama'" in capsys.readouterr().err

    (tmp_path / "garbage.pth").write_bytes(b"not a zip and not a pickle")
    assert cli("convert", tmp_path / "garbage.pth", tmp_path / "out", "--config", "gpt2") == 1
    assert "garbage.pth: not a readable PyTorch file (Unsupported operand" in capsys.readouterr().err

    assert cli("convert", tmp_path / "no" / "such" / "dir", tmp_path / "out") == 1
    assert "not a local file or folder, and not a model on the Hub" in capsys.readouterr().err
    assert cli("convert", gpt2_dir, tmp_path / "out", "--config", "gpt2") == 1
    assert "--config applies to the book's format only" in capsys.readouterr().err
    assert cli("convert", gpt2_dir, tmp_path / "out", "--max-shard-size", "2 parsecs") == 1
    assert "max shard size '2 parsecs'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pth", "gpt2", "llama"]


def test_existing_destination_is_refused_unless_overwrite(gpt2_dir, tmp_path, capsys):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    assert cli("convert", gpt2_dir, dst) == 1
    assert f"{dst} exists; pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]

    assert cli("convert", gpt2_dir, dst, "--overwrite") == 0
    assert "keep.txt" not in {p.name for p in dst.iterdir()} and (dst / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2", "out"]  # no temporary folder left


def test_a_failure_mid_conversion_leaves_nothing_half_written(gpt2_dir, tmp_path, monkeypatch):
    dst = tmp_path / "out"
    assert cli("convert", gpt2_dir, dst) == 0
    before = files(dst)
    reads = []
    real_get = gpt_scratch.checkpoint.TensorFiles.get

    def failing_get(self, key):
        reads.append(key)
        if len(reads) == 10:
            raise OSError("disk went away")
        return real_get(self, key)

    monkeypatch.setattr(gpt_scratch.checkpoint.TensorFiles, "get", failing_get)
    with pytest.raises(OSError, match="disk went away"):
        convert_checkpoint(gpt2_dir, dst, dtype="bfloat16", overwrite=True, progress=False)
    assert files(dst) == before  # the old output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2", "out"]


# ----- Hub ids (loopback FakeHub, subprocesses with HF_ENDPOINT) -----------------------------------------

HUB_SCRIPT = """
import sys, torch
from transformers import GPT2LMHeadModel
from gpt_scratch import GPTScratchForCausalLM
ids = torch.tensor([[464, 3290, 318, 257, 1332, 13]])
ours = GPTScratchForCausalLM.from_pretrained(sys.argv[1])
torch.testing.assert_close(ours(ids).logits, GPT2LMHeadModel.from_pretrained(sys.argv[1])(ids).logits, atol=1e-4,
                           rtol=0)
assert ours.config.name_or_path == sys.argv[1], ours.config.name_or_path
print("HUB OK")
"""


def test_from_pretrained_and_convert_a_hub_id(fake_hub: FakeHub, gpt2_dir, tmp_path):
    repo = "openai-community/gpt2"
    fake_hub.seed(repo, files(gpt2_dir))
    env = hub_env(fake_hub, tmp_path)
    assert CLI.is_file(), f"the gpt-scratch console script is not installed beside {sys.executable}"

    loaded = subprocess.run([sys.executable, "-c", HUB_SCRIPT, repo], env=env, capture_output=True, text=True,
                            timeout=300)
    converted = subprocess.run([str(CLI), "convert", repo, str(tmp_path / "out")], env=env, capture_output=True,
                               text=True, timeout=300)

    assert loaded.returncode == 0 and "HUB OK" in loaded.stdout, loaded.stderr[-3000:]
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert f"converted {repo} (hf-gpt2) to" in converted.stdout
    assert cli("convert", gpt2_dir, tmp_path / "local") == 0
    assert files(tmp_path / "out") == files(tmp_path / "local")
    assert {r.route for r in fake_hub.requests} <= {"model_info", "resolve", "tree", "paths_info"}
    assert fake_hub.unhandled == []


# ----- the real 124M --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_124m_gpt2_and_book_checkpoints(tmp_path):
    config = GPTScratchConfig.from_preset("124M", drop_rate=0.0)
    hf, ours = hf_pair(config)
    hf.save_pretrained(tmp_path / "gpt2")
    loaded = GPTScratchForCausalLM.from_pretrained(tmp_path / "gpt2")
    assert_close(loaded(IDS).logits, hf(IDS).logits, atol=1e-4, rtol=0)
    assert cli("convert", tmp_path / "gpt2", tmp_path / "ours", "--max-shard-size", "200MB") == 0
    assert len(list((tmp_path / "ours").glob("model-*.safetensors"))) == 3
    assert cli("convert", tmp_path / "ours", tmp_path / "back", "--to", "hf-gpt2") == 0
    assert files(tmp_path / "back")["model.safetensors"] == files(tmp_path / "gpt2")["model.safetensors"]

    # The book's chapter 5 loads OpenAI's GPT-2 into GPTModel: qkv_bias=True, 1024 positions, untied head.
    book_cfg = {**config_to_book(config), "drop_rate": 0.1}
    book = GPTModel(book_cfg).eval()
    book.load_state_dict(gpt_scratch.convert.to_book(loaded.state_dict()), strict=True)
    torch.save(book.state_dict(), tmp_path / "book.pth")
    assert cli("convert", tmp_path / "book.pth", tmp_path / "from-book", "--config", "124M") == 0
    from_book = GPTScratchForCausalLM.from_pretrained(tmp_path / "from-book")
    c = from_book.config
    assert (c.vocab_size, c.context_length, c.emb_dim, c.n_heads, c.n_layers, c.drop_rate, c.qkv_bias,
            c.tie_word_embeddings) == (50257, 1024, 768, 12, 12, 0.1, True, False)
    with torch.no_grad():
        assert_close(from_book(IDS).logits, book(IDS), atol=1e-4, rtol=0)
