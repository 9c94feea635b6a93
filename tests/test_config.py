"""The config: the book's names, the standard names, presets with GPT-2's exact sizes, validation."""

import json

import pytest
import torch
from transformers import AutoConfig

from gpt_scratch import PRESET_NAMES, GPTScratchConfig, GPTScratchForCausalLM

GPT_CONFIG_124M = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
                   "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}


def test_default_is_the_books_124m_config():
    config = GPTScratchConfig()
    assert {k: getattr(config, k) for k in GPT_CONFIG_124M} == GPT_CONFIG_124M
    assert config.tie_word_embeddings is False
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (50256, 50256, 50256)
    assert config.layer_norm_eps == 1e-5 and config.initializer_range == 0.02


@pytest.mark.parametrize("spelling", ["drop_rate", "dropout"])
def test_seed_dict_either_dropout_spelling(spelling):
    seed = dict(GPT_CONFIG_124M)
    seed[spelling] = seed.pop("drop_rate")
    assert GPTScratchConfig(**seed).to_dict() == GPTScratchConfig().to_dict()
    assert GPTScratchConfig(**{**seed, spelling: 0.25}).drop_rate == 0.25


def test_conflicting_dropout_spellings_are_refused():
    with pytest.raises(ValueError, match="drop_rate=0.2 and dropout=0.3"):
        GPTScratchConfig(drop_rate=0.2, dropout=0.3)


def test_standard_names_map_onto_the_books():
    config = GPTScratchConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=3, max_position_embeddings=128)
    assert (config.emb_dim, config.n_heads, config.n_layers, config.context_length) == (64, 4, 3, 128)
    config.hidden_size = 96
    assert config.emb_dim == 96 and config.hidden_size == 96
    assert config.head_dim == 24


def test_book_default_parameter_count():
    with torch.device("meta"):
        assert GPTScratchForCausalLM(GPTScratchConfig()).num_parameters() == 163_009_536


@pytest.mark.parametrize(
    "names,count",
    [(("gpt2", "124M"), 124_439_808), (("gpt2-medium", "355M"), 354_823_168),
     (("gpt2-large", "774M"), 774_030_080), (("gpt2-xl", "1558M"), 1_557_611_200)],
)
def test_presets_have_gpt2s_exact_parameter_counts(names, count):
    configs = [GPTScratchConfig.from_preset(n) for n in names]
    assert configs[0].to_dict() == configs[1].to_dict()
    assert configs[0].qkv_bias and configs[0].tie_word_embeddings
    with torch.device("meta"):
        assert GPTScratchForCausalLM(configs[0]).num_parameters() == count


def test_preset_overrides_and_unknown_preset():
    assert GPTScratchConfig.from_preset("gpt2", drop_rate=0.0).drop_rate == 0.0
    with pytest.raises(ValueError) as err:
        GPTScratchConfig.from_preset("gpt3")
    for name in PRESET_NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(emb_dim=100, n_heads=12), r"emb_dim \(100\) must be divisible by n_heads \(12\)"),
        (dict(n_layers=0), "n_layers must be a positive integer"),
        (dict(n_heads=-2), "n_heads must be a positive integer"),
        (dict(vocab_size=10.5), "vocab_size must be a positive integer"),
        (dict(context_length=True), "context_length must be a positive integer"),
        (dict(drop_rate=1.0), r"drop_rate must be in \[0, 1\)"),
        (dict(drop_rate=-0.1), r"drop_rate must be in \[0, 1\)"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps must be a positive number"),
        (dict(qkv_bias="yes"), "qkv_bias must be True or False"),
        (dict(vocab_size=100, bos_token_id=50256), r"bos_token_id must be None or an integer in \[0, 100\)"),
        (dict(vocab_size=100, pad_token_id=-1), r"pad_token_id must be None or an integer in \[0, 100\)"),
    ],
)
def test_invalid_values_name_the_field_and_rule(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTScratchConfig(**kwargs)


def test_save_load_round_trip_and_autoconfig(tmp_path):
    config = GPTScratchConfig.from_preset("gpt2-medium", drop_rate=0.05)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, GPTScratchConfig)
    assert loaded.to_diff_dict() == config.to_diff_dict()
    assert isinstance(AutoConfig.for_model("gpt_scratch"), GPTScratchConfig)
    assert (tmp_path / "configuration_gpt_scratch.py").is_file()


def test_small_vocabulary_gets_special_ids_only_where_they_exist(tmp_path):
    small = GPTScratchConfig(vocab_size=99)
    assert (small.bos_token_id, small.eos_token_id, small.pad_token_id) == (None, None, None)
    assert GPTScratchConfig(vocab_size=99, eos_token_id=3).eos_token_id == 3
    # Exactly GPT-2's vocabulary still gets <|endoftext|>; 50256 tokens do not.
    assert GPTScratchConfig(vocab_size=50257).eos_token_id == 50256
    assert GPTScratchConfig(vocab_size=50256).eos_token_id is None
    small.save_pretrained(tmp_path)
    assert GPTScratchConfig.from_pretrained(tmp_path).to_dict() == small.to_dict()
    assert type(GPTScratchConfig().eos_token_id) is int and json.loads(GPTScratchConfig().to_json_string())[
        "eos_token_id"] == 50256
