"""Into llama.cpp: `convert --to hf-gpt2` gives a folder llama.cpp's converter takes as it is, and `convert --to gguf`
writes the GGUF file itself (read back here with llama.cpp's own `gguf` reader).

llama.cpp itself runs in benchmarks/llama_cpp_parity.py, where llama-cpp-python is installed (never in CI)."""

import hashlib
import json
import re

import gguf
import numpy as np
import pytest
import torch
from conftest import THE_VERDICT, sharpen, tiny_config
from gguf import GGUFReader
from gguf.quants import dequantize
from transformers import AutoConfig, AutoTokenizer

from gpt_scratch import GPTScratchForCausalLM, load_tokenizer
from gpt_scratch.checkpoint import convert_checkpoint
from gpt_scratch.cli import main
from gpt_scratch.tokenization_gpt_scratch import write_gpt2_vocab_files

# llama.cpp's convert_hf_to_gguf.py names a BPE pre-tokenizer by hashing the ids of this text (its `chktxt`); the hash
# of GPT-2's ids is what makes it write tokenizer.ggml.pre = "gpt-2".
LLAMA_CPP_CHKTXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
    "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
    "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
LLAMA_CPP_GPT2_CHKHSH = "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two saved models: the book's layout (untied head, no query/key/value bias) and GPT-2's (tied, biases)."""
    folder = tmp_path_factory.mktemp("gguf")
    made = {}
    for name, overrides in {"book": {}, "gpt2": {"tie_word_embeddings": True, "qkv_bias": True}}.items():
        torch.manual_seed(0)
        model = GPTScratchForCausalLM(tiny_config(**overrides)).eval()
        sharpen(model, 32)
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 1:
                    p.add_(torch.randn_like(p) * 0.1)
        model.save_pretrained(folder / name)
        made[name] = (folder / name, model)
    return made


def expected_tensors(model: GPTScratchForCausalLM) -> dict[str, torch.Tensor]:
    """llama.cpp's gpt2 tensors, spelled out by hand from our state dict (PyTorch's (out, in) layout, q|k|v fused)."""
    sd, n = model.state_dict(), model.config.n_layers
    zeros = torch.zeros(model.config.emb_dim)
    out = {"token_embd.weight": sd["model.tok_emb.weight"], "position_embd.weight": sd["model.pos_emb.weight"],
           "output_norm.weight": sd["model.final_norm.scale"], "output_norm.bias": sd["model.final_norm.shift"]}
    if not model.config.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    for i in range(n):
        ours = f"model.trf_blocks.{i}."
        att = ours + "att."
        out |= {
            f"blk.{i}.attn_norm.weight": sd[ours + "norm1.scale"], f"blk.{i}.attn_norm.bias": sd[ours + "norm1.shift"],
            f"blk.{i}.attn_qkv.weight": torch.cat([sd[att + f"{w}.weight"] for w in ("W_query", "W_key", "W_value")]),
            f"blk.{i}.attn_qkv.bias": torch.cat([sd.get(att + f"{w}.bias", zeros) for w in ("W_query", "W_key",
                                                                                            "W_value")]),
            f"blk.{i}.attn_output.weight": sd[att + "out_proj.weight"], f"blk.{i}.attn_output.bias": sd[att +
                                                                                                       "out_proj.bias"],
            f"blk.{i}.ffn_norm.weight": sd[ours + "norm2.scale"], f"blk.{i}.ffn_norm.bias": sd[ours + "norm2.shift"],
            f"blk.{i}.ffn_up.weight": sd[ours + "ff.layers.expand.weight"],
            f"blk.{i}.ffn_up.bias": sd[ours + "ff.layers.expand.bias"],
            f"blk.{i}.ffn_down.weight": sd[ours + "ff.layers.project.weight"],
            f"blk.{i}.ffn_down.bias": sd[ours + "ff.layers.project.bias"],
        }
    return out


@pytest.fixture(scope="module")
def gguf_file(models, tmp_path_factory):
    """(fields, tensors, conversion result) of a model converted to a file type, each converted and read once (reading
    GPT-2's 100,000 vocabulary strings back is the slow part). q8_0 goes through the command line."""
    folder, made = tmp_path_factory.mktemp("files"), {}

    def get(name: str, file_type: str):
        if (name, file_type) not in made:
            path = folder / f"{name}-{file_type}.gguf"
            if file_type == "q8_0":
                assert main(["convert", str(models[name][0]), str(path), "--to", "gguf", "--dtype", "q8_0"]) == 0
                result = None
            else:
                result = convert_checkpoint(models[name][0], path, dst_format="gguf", dtype=file_type, progress=False)
            made[name, file_type] = (*read(path), result)
        return made[name, file_type]

    return get


def read(path) -> tuple[dict, dict]:
    reader = GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    return fields, {t.name: t for t in reader.tensors}


def values(tensor) -> np.ndarray:
    """A tensor read back as float32 in PyTorch's shape (GGUF lists dimensions innermost first)."""
    return dequantize(tensor.data, tensor.tensor_type).reshape(tuple(reversed(tensor.shape.tolist())))


def test_f32_gguf_holds_the_exact_tensors_under_llama_cpps_gpt2_names(models, gguf_file):
    fields, tensors, result = gguf_file("book", "f32")
    assert result.target_format == "gguf" and result.files == ("book-f32.gguf",)
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["book-f32.gguf"]  # no temporary file beside it
    expected = expected_tensors(models["book"][1])
    assert set(tensors) == set(expected) and result.tensors == len(expected) and "output.weight" in tensors
    for key, tensor in tensors.items():
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32, key
        assert np.array_equal(values(tensor), expected[key].numpy()), key
    # Every name is one llama.cpp's gpt2 architecture loads (gguf-py's table of it).
    allowed = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.GPT2]}
    assert {re.sub(r"blk\.\d+\.", "blk.{bid}.", k).rsplit(".", 1)[0] for k in tensors} <= allowed


def test_metadata_is_llama_cpps_gpt2_with_gpt2s_vocabulary_and_merges(gguf_file, tmp_path):
    fields = dict(gguf_file("book", "f32")[0])
    tokens, merges = fields.pop("tokenizer.ggml.tokens"), fields.pop("tokenizer.ggml.merges")
    token_types = fields.pop("tokenizer.ggml.token_type")
    assert fields == {
        "general.architecture": "gpt2", "general.type": "model", "general.name": "book", "general.file_type": 0,
        "general.quantization_version": 2, "gpt2.block_count": 2, "gpt2.context_length": 64,
        "gpt2.embedding_length": 32, "gpt2.feed_forward_length": 128, "gpt2.attention.head_count": 4,
        "gpt2.attention.layer_norm_epsilon": pytest.approx(1e-5), "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.bos_token_id": 50256, "tokenizer.ggml.eos_token_id": 50256,
        "tokenizer.ggml.padding_token_id": 50256, "tokenizer.ggml.unknown_token_id": 50256,
        "tokenizer.ggml.add_bos_token": False,
    }
    vocab_path, merges_path = write_gpt2_vocab_files(tmp_path / "openai")  # OpenAI's encoder.json and vocab.bpe
    encoder = json.loads(vocab_path.read_text(encoding="utf-8"))
    assert tokens == sorted(encoder, key=encoder.__getitem__) and len(tokens) == 50257
    assert merges == merges_path.read_text(encoding="utf-8").splitlines()[1:] and len(merges) == 50000
    assert token_types == [gguf.TokenType.NORMAL] * 50256 + [gguf.TokenType.CONTROL]


@pytest.mark.parametrize("file_type", ["f16", "bf16", "q8_0"])
def test_f16_bf16_exact_casts_and_q8_0_within_its_step_for_a_tied_head(models, gguf_file, file_type):
    expected = expected_tensors(models["gpt2"][1])
    fields, tensors, _ = gguf_file("gpt2", file_type)
    assert fields["general.file_type"] == {"f16": 1, "bf16": 32, "q8_0": 7}[file_type]
    assert set(tensors) == set(expected) and "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    for key, tensor in tensors.items():
        want = expected[key]
        if want.ndim == 1 or key.startswith("position_embd."):  # vectors and positions stay f32, as llama.cpp's
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F32 and np.array_equal(values(tensor),
                                                                                          want.numpy()), key
        elif file_type == "q8_0":
            assert tensor.tensor_type == gguf.GGMLQuantizationType.Q8_0, key
            # Blocks of 32 values share one scale d = max|x| / 127, stored as f16 (relative error <= 2^-11): each
            # value is off by at most d / 2 for rounding to a multiple of d, plus 127 times the scale's error.
            blocks = want.reshape(-1, 32)
            step = blocks.abs().amax(-1, keepdim=True) / 127
            error = (torch.from_numpy(values(tensor)).reshape(-1, 32) - blocks).abs()
            assert bool((error <= step * (0.5 + 127 * 2**-11) + 1e-7).all()), key
            assert error.max() > 0  # it is quantised
        else:
            assert tensor.tensor_type.name == file_type.upper(), key
            cast = want.to(torch.float16 if file_type == "f16" else torch.bfloat16).float()
            assert np.array_equal(values(tensor), cast.numpy()), key


def test_gguf_refusals_leave_nothing_behind(models, tmp_path, capsys):
    folder, _ = models["book"]
    out = tmp_path / "cli.gguf"
    out.write_bytes(b"old")
    assert main(["convert", str(folder), str(out), "--to", "gguf"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    with pytest.raises(ValueError, match="GGUF type 'q4_0' is not supported; expected auto, f32, f16, bf16, q8_0"):
        convert_checkpoint(folder, tmp_path / "x.gguf", dst_format="gguf", dtype="q4_0")
    small = tmp_path / "small"
    GPTScratchForCausalLM(tiny_config(vocab_size=1000)).save_pretrained(small)
    with pytest.raises(ValueError, match="vocab_size must be at least 50257; .*small has vocab_size=1000"):
        convert_checkpoint(small, tmp_path / "small.gguf", dst_format="gguf", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.gguf", "small"]  # nothing half-written


def test_hf_gpt2_folder_has_what_llama_cpps_converter_reads(models, tmp_path):
    folder, model = models["gpt2"]
    out = tmp_path / "hf"
    result = convert_checkpoint(folder, out, dst_format="hf-gpt2", progress=False)
    assert {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"} <= set(result.files)
    # convert_hf_to_gguf.py reads the hyperparameters through AutoConfig, n_ctx included.
    assert AutoConfig.from_pretrained(out).to_dict()["n_ctx"] == json.loads((out / "config.json").read_text())[
        "n_ctx"] == 64
    openai = tmp_path / "openai"
    write_gpt2_vocab_files(openai)
    for name in ("vocab.json", "merges.txt"):
        assert (out / name).read_bytes() == (openai / name).read_bytes()
    # It tokenizes with AutoTokenizer (as GPT2Tokenizer) and identifies the pre-tokenizer by hashing these ids.
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(tokenizer).__name__ == "GPT2Tokenizer" and tokenizer.model_max_length == 64
    assert hashlib.sha256(str(tokenizer.encode(LLAMA_CPP_CHKTXT)).encode()).hexdigest() == LLAMA_CPP_GPT2_CHKHSH
    text = THE_VERDICT.read_text(encoding="utf-8")
    assert tokenizer(text)["input_ids"] == load_tokenizer()(text)["input_ids"]
    # ... and the merges and special tokens through gguf-py's SpecialVocab.
    special = gguf.SpecialVocab(out, load_merges=True)
    assert len(special.merges) == 50000 and special.merges[:2] == ["Ġ t", "Ġ a"]
    assert {special.special_token_ids[k] for k in ("bos", "eos", "unk")} == {50256}
