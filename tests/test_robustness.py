"""Hostile inputs at every public edge: each is refused with a ValueError/TypeError/FileNotFoundError (or, where it
was silently wrong before, now does what the caller asked), and the message names the argument and what is accepted.

One parametrised catalogue per edge (config, forward, generate, loading, the conversion maps, the tokenizer's ranks,
training data); the faults (killed saves, full disks, a Hub that never answers) are in test_faults.py.
"""

import base64
import logging
import os
import re

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file, save_file
from transformers import DynamicCache, GenerationConfig, pipeline

from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM, TokenWindowDataset, collate_windows, load_tokenizer
from gpt_scratch.checkpoint import TensorFiles
from gpt_scratch.convert import config_from_book, config_from_hf_gpt2, from_book, from_hf_gpt2, to_book, to_hf_gpt2
from gpt_scratch.modeling_gpt_scratch import CACHE_NAME
from gpt_scratch.tokenization_gpt_scratch import GPT2_TIKTOKEN_SHA256, write_gpt2_vocab_files

IDS = torch.tensor([[15496, 11, 314, 716, 257, 3303, 2746, 13]])  # 8 tokens


@pytest.fixture(scope="module")
def model() -> GPTScratchForCausalLM:
    torch.manual_seed(0)
    return GPTScratchForCausalLM(tiny_config()).eval()  # context 64: generation_config.max_new_tokens = 32


def refuses(error: type[Exception], pattern: str, call) -> None:
    with pytest.raises(error, match=pattern):
        call()


# ----- config -------------------------------------------------------------------------------------------------


def test_gpt2_config_names_are_aliases_and_conflicts_are_refused():
    config = GPTScratchConfig(n_head=16, n_embd=64, n_layer=3, n_positions=128, vocab_size=100)
    assert (config.n_heads, config.emb_dim, config.n_layers, config.context_length) == (16, 64, 3, 128)
    assert "n_head" not in config.to_dict()
    refuses(ValueError, r"got both n_heads=8 and n_head=16 \(another name for n_heads\); pass only one",
            lambda: GPTScratchConfig(n_heads=8, n_head=16))


def test_unknown_config_keys_are_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="transformers"):
        config = GPTScratchConfig(nheads=16, **tiny_config().to_dict())
    assert config.n_heads == 4
    assert re.search(r"GPTScratchConfig does not know 'nheads': kept, but the model does not read it \(the fields "
                     r"are vocab_size, context_length, emb_dim, n_heads", caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformers"):
        GPTScratchConfig.from_dict(config.to_dict())  # what save/load passes: nothing unknown but that key
        GPTScratchConfig(**tiny_config().to_dict())
    assert caplog.text.count("does not know") == 1


@pytest.mark.parametrize("content,pattern", [
    ("[1, 2]", r"config\.json holds a list, not a JSON object of config fields"),
    ('{"model_type": "llama", "hidden_size": 64}', r"config\.json has model_type 'llama', not 'gpt_scratch'"),
])
def test_config_json_of_the_wrong_shape(tmp_path, content, pattern):
    (tmp_path / "config.json").write_text(content)
    refuses(ValueError, pattern, lambda: GPTScratchConfig.from_pretrained(tmp_path))
    refuses(ValueError, pattern, lambda: GPTScratchForCausalLM.from_pretrained(tmp_path))


# ----- forward ------------------------------------------------------------------------------------------------


def _cache_of(model, tokens: int):
    cache = DynamicCache(config=model.config)
    model(torch.zeros(1, tokens, dtype=torch.long), **{CACHE_NAME: cache}, use_cache=True)
    return cache


FORWARD_CASES = {
    "empty input": (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)),
                    r"input_ids holds no tokens \(shape \(1, 0\)\); pass at least one per row"),
    "empty embeddings": (dict(inputs_embeds=torch.zeros(1, 0, 32)), r"inputs_embeds holds no tokens"),
    "float position_ids": (dict(input_ids=IDS, position_ids=torch.zeros(1, 8)),
                           r"position_ids must be an integer tensor \(torch\.long\), got dtype torch\.float32"),
    "short position_ids": (dict(input_ids=IDS, position_ids=torch.zeros(1, 3, dtype=torch.long)),
                           r"position_ids must have shape \(batch, seq_len\) = \(1, 8\), got shape \(1, 3\)"),
    "position_ids a list": (dict(input_ids=IDS, position_ids=[[0, 1]]), r"position_ids must be a torch\.Tensor"),
    "float64 inputs_embeds": (dict(inputs_embeds=torch.zeros(1, 8, 32, dtype=torch.float64)),
                              r"inputs_embeds has dtype torch\.float64, the model's weights torch\.float32: pass "
                              r"inputs_embeds\.to\(model\.dtype\)"),
    "mask shorter than the tokens": (dict(input_ids=IDS, attention_mask=torch.ones(1, 4, dtype=torch.long)),
                                     r"attention_mask has 4 columns for 0 cached \+ 8 new tokens; it needs one per "
                                     r"token"),
    "mask of another batch": (dict(input_ids=IDS, attention_mask=torch.ones(3, 8, dtype=torch.long)),
                              r"attention_mask must have shape \(batch, cached \+ new tokens\) = \(1, \.\.\.\), got "
                              r"shape \(3, 8\)"),
    "1-D mask": (dict(input_ids=IDS, attention_mask=torch.ones(8)), r"attention_mask must have shape"),
    "labels of another length": (dict(input_ids=IDS, labels=torch.zeros(1, 5, dtype=torch.long)),
                                 r"labels must have the inputs' shape \(batch, seq_len\) = \(1, 8\), got \(1, 5\)"),
    "labels outside the vocabulary": (dict(input_ids=IDS, labels=torch.full((1, 8), 60000)),
                                      r"label 60000 is outside the vocabulary \[0, 50257\) \(-100 marks positions "
                                      r"to ignore\)"),
    "float labels": (dict(input_ids=IDS, labels=torch.zeros(1, 8)), r"labels must be an integer tensor"),
    "labels with logits_to_keep": (dict(input_ids=IDS, labels=IDS, logits_to_keep=1),
                                   r"labels need logits at every position: pass logits_to_keep=0"),
    "logits_to_keep=-1": (dict(input_ids=IDS, logits_to_keep=-1),
                          r"logits_to_keep must be an int >= 0 \(0 keeps every position, k the last k\) or a tensor "
                          r"of positions, got -1"),
    "token id outside the vocabulary": (dict(input_ids=torch.tensor([[1, 50257]])),
                                        r"token id 50257 is outside the vocabulary \[0, 50257\)"),
}


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_forward_refuses(model, case):
    kwargs, pattern = FORWARD_CASES[case]
    refuses(ValueError, pattern, lambda: model(**kwargs))


def test_the_context_counts_the_cache_even_with_explicit_positions(model):
    cache = _cache_of(model, 60)
    positions = torch.arange(8).unsqueeze(0)  # in range, but 60 cached + 8 new do not fit 64
    refuses(ValueError, r"sequence of 68 tokens \(60 cached \+ 8 new\) is longer than the context length 64",
            lambda: model(IDS, position_ids=positions, **{CACHE_NAME: cache}))
    refuses(ValueError, r"sequence of 68 tokens \(60 cached \+ 8 new\)",
            lambda: model(IDS, **{CACHE_NAME: _cache_of(model, 60)}))
    # Without a cache, explicit positions may pack several sequences into one row (padding-free training).
    packed = torch.randint(0, 50257, (1, 80))
    assert model(packed, position_ids=(torch.arange(80) % 40).unsqueeze(0)).logits.shape == (1, 80, 50257)


def test_valid_edges_still_work(model):
    with torch.no_grad():
        full = model(IDS).logits
        assert torch.equal(model(IDS, logits_to_keep=0).logits, full)
        torch.testing.assert_close(model(IDS, logits_to_keep=1).logits, full[:, -1:])
        assert model(IDS, labels=torch.where(IDS > 1000, IDS, -100)).loss.isfinite()
        assert torch.allclose(model(IDS, position_ids=torch.arange(8)).logits, full, atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # embeddings of another dtype are fine under autocast
            model(inputs_embeds=torch.zeros(1, 8, 32, dtype=torch.bfloat16))


# ----- generate -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(inputs=torch.tensor([1, 2, 3])), r"generate\(\) takes the prompt as token ids of shape \(batch, prompt_len\)"
                                           r", at least one token each, got \(3,\); one prompt's ids are "
                                           r"ids\.unsqueeze\(0\)"),
    (dict(inputs=torch.zeros(1, 0, dtype=torch.long)), r"at least one token each, got \(1, 0\)"),
    (dict(inputs=IDS, max_new_tokens="5"), r"max_new_tokens must be an integer >= 1, got '5'"),
    (dict(inputs=IDS, max_new_tokens=0), r"max_new_tokens must be an integer >= 1, got 0"),
    (dict(inputs=IDS, max_length=12.5), r"max_length must be an integer >= 1, got 12\.5"),
    (dict(inputs=IDS, generation_config=GenerationConfig(max_new_tokens=True)), r"max_new_tokens must be an integer"),
    (dict(inputs=IDS, max_new_tokens=60), r"prompt \(8 tokens\) \+ new tokens would reach 68 tokens, longer than "
                                          r"the context length 64; lower max_new_tokens to at most 56"),
])
def test_generate_refuses(model, kwargs, pattern):
    refuses(ValueError, pattern, lambda: model.generate(**kwargs, do_sample=False))


def test_a_callers_length_wins_over_the_models_default(model, caplog):
    tokenizer = load_tokenizer(model_max_length=64)
    with caplog.at_level(logging.WARNING):
        assert model.generate(IDS, do_sample=False).shape == (1, 8 + 32)  # generation_config.json's default
        assert model.generate(IDS, max_length=12, do_sample=False).shape == (1, 12)  # as GPT2LMHeadModel
        assert model.generate(IDS, generation_config=GenerationConfig(max_length=12, do_sample=False)).shape == (1, 12)
        assert model.generate(IDS, max_new_tokens=3, do_sample=False).shape == (1, 11)
        generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
        out = generator(tokenizer.decode(IDS[0]), max_length=12, do_sample=False, return_tensors=True)
    assert len(out[0]["generated_token_ids"]) == 12
    assert caplog.text == ""  # no "max_new_tokens will take precedence", no model-agnostic max_length warning
    # Both given: max_new_tokens wins, as transformers has it (and says so).
    assert model.generate(IDS, max_new_tokens=3, max_length=30, do_sample=False).shape == (1, 11)


# ----- loading ------------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    GPTScratchForCausalLM(tiny_config(vocab_size=1000, tie_word_embeddings=True)).save_pretrained(folder)
    return folder


def test_a_missing_folder_is_named(tmp_path):
    refuses(FileNotFoundError, rf"no such model folder: {re.escape(str(tmp_path))}/nope \(and not a Hub repo id such "
                               r"as 'openai-community/gpt2'\)",
            lambda: GPTScratchForCausalLM.from_pretrained(tmp_path / "nope"))


def test_a_missing_tensor_is_an_error_naming_it(saved):
    weights = load_file(saved / "model.safetensors")
    del weights["model.trf_blocks.1.att.W_key.weight"]
    save_file(weights, saved / "model.safetensors", metadata={"format": "pt"})
    refuses(ValueError, r"model: the checkpoint \(model\.safetensors\) lacks 1 tensors the model needs: "
                        r"model\.trf_blocks\.1\.att\.W_key\.weight \(they would stay randomly initialised\)",
            lambda: GPTScratchForCausalLM.from_pretrained(saved))


def test_the_tied_head_may_be_absent_and_the_base_model_loads_a_causal_checkpoint(saved):
    from gpt_scratch import GPTScratchModel

    loaded = GPTScratchForCausalLM.from_pretrained(saved)  # lm_head.weight is not stored: tied
    assert loaded.lm_head.weight is loaded.model.tok_emb.weight
    GPTScratchModel.from_pretrained(saved)  # keys under model.*: nothing missing


def test_integer_weights_are_an_error_naming_file_and_tensor(saved):
    weights = load_file(saved / "model.safetensors")
    weights["model.final_norm.scale"] = torch.ones(32, dtype=torch.int32)
    save_file(weights, saved / "model.safetensors", metadata={"format": "pt"})
    refuses(ValueError, r"model\.safetensors: tensor 'model\.final_norm\.scale' holds int32 values; model weights "
                        r"are floating point", lambda: GPTScratchForCausalLM.from_pretrained(saved))


def test_a_corrupt_index_is_named(tmp_path):
    folder = tmp_path / "sharded"
    GPTScratchForCausalLM(tiny_config(vocab_size=1000)).save_pretrained(folder, max_shard_size="100KB")
    (folder / "model.safetensors.index.json").write_text('{"weight_map": ')
    refuses(ValueError, r"model\.safetensors\.index\.json: not a readable checkpoint index",
            lambda: GPTScratchForCausalLM.from_pretrained(folder))


def test_save_pretrained_into_a_file_is_an_error(tmp_path, model):
    (tmp_path / "file").write_text("mine")
    for save in (model.save_pretrained, load_tokenizer().save_pretrained, write_gpt2_vocab_files):
        refuses(NotADirectoryError, r"file.* is a file, not a folder", lambda: save(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"


# ----- the conversion maps and the book's files -----------------------------------------------------------------


@pytest.mark.parametrize("convert", [from_hf_gpt2, to_hf_gpt2, from_book, to_book])
def test_conversion_maps_take_a_state_dict(convert):
    refuses(TypeError, r"state_dict must be a mapping of names to tensors \(model\.state_dict\(\)\), got list",
            lambda: convert([("a", torch.zeros(1))]))
    refuses(TypeError, r"state_dict must map names to tensors; \['a'\] do not \(list\)", lambda: convert({"a": [1]}))


def test_config_maps_take_a_dict():
    refuses(TypeError, r"gpt2_config must be a transformers GPT2Config or its dict, got list",
            lambda: config_from_hf_gpt2([1]))
    refuses(TypeError, r"the book's config must be a dict such as GPT_CONFIG_124M, got list",
            lambda: config_from_book([1]))


def test_a_malicious_pickle_is_refused_saying_why(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"tok_emb.weight": torch.zeros(2, 2), "x": Exploit()}, tmp_path / "model.pth")
    refuses(ValueError, r"model\.pth: holds Python objects besides tensors \((os|posix)\.system\), which "
                        r"torch\.load\(weights_only=True\) refuses to unpickle; a pickle can run code when loaded",
            lambda: TensorFiles([tmp_path / "model.pth"]))


# ----- the tokenizer's ranks ----------------------------------------------------------------------------------


def _ranks_file(tmp_path, edit) -> str:
    from gpt_scratch.tokenization_gpt_scratch import _PACKAGED_RANKS

    lines = _PACKAGED_RANKS.read_bytes().splitlines()
    path = tmp_path / "gpt2.tiktoken"
    path.write_bytes(b"\n".join(edit(lines)) + b"\n")
    return path


def _token(line: bytes) -> bytes:
    return line.split()[0]


@pytest.mark.parametrize("edit,pattern", [
    (lambda lines: lines[:6] + [_token(lines[5]) + b" 6"] + lines[7:],
     r"line 7: token b'&' is listed twice \(ranks 5 and 6\); each token has one rank"),
    (lambda lines: lines[:5] + [lines[6], lines[5]] + lines[7:],
     r"line 6: rank 6 where rank 5 comes next; the ranks run 0\.\.N-1 in order, one per line"),
    (lambda lines: lines[:-1], r"has 50255 tokens, ranks 0\.\.50254; expected GPT-2's 50256 ranks"),
])
def test_malformed_ranks_are_refused(tmp_path, edit, pattern):
    refuses(ValueError, pattern, lambda: load_tokenizer(_ranks_file(tmp_path, edit)))


def test_ranks_that_are_not_gpt2s_are_said_to_be(tmp_path, caplog):
    def swap(lines):  # two tokens trade ranks: well-formed, but every text with them encodes to other ids
        lines = list(lines)
        lines[1000], lines[2000] = _token(lines[2000]) + b" 1000", _token(lines[1000]) + b" 2000"
        return lines

    path = _ranks_file(tmp_path, swap)
    with caplog.at_level(logging.WARNING):
        tokenizer = load_tokenizer(path)
    assert re.search(rf"gpt2\.tiktoken holds a byte-level BPE that is not GPT-2's \(sha256 [0-9a-f]{{64}}, not "
                     rf"{GPT2_TIKTOKEN_SHA256}\): 2 of its 50256 tokens have other ids", caplog.text)
    swapped = base64.b64decode(_token(path.read_bytes().splitlines()[1000])).decode()
    assert tokenizer.convert_tokens_to_ids(load_tokenizer().convert_ids_to_tokens(2000)) == 1000, swapped
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_tokenizer(_ranks_file(tmp_path, lambda lines: lines))  # GPT-2's own ranks: nothing to say
    assert caplog.text == ""


# ----- training data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: TokenWindowDataset(torch.tensor([1.0, 2.7, 3.0, 4.0]), 2), TypeError,
     r"ids must be integer token ids, got dtype torch\.float32 \(a float would be truncated\)"),
    (lambda: TokenWindowDataset([1.5, 2.0], 1), TypeError, r"ids must be integer token ids"),
    (lambda: TokenWindowDataset([1, 2, 50257, 3], 2), ValueError,
     r"ids holds 50257, outside the vocabulary \[0, 50257\)"),
    (lambda: TokenWindowDataset([1, -1, 2], 2), ValueError, r"ids holds -1, outside the vocabulary"),
    (lambda: collate_windows([{"input_ids": torch.tensor([1.0, 2.0])}]), TypeError,
     r"batch\[0\]\['input_ids'\] must be integer token ids"),
    (lambda: collate_windows([{"input_ids": [1, 2]}, {"input_ids": [3, 60000]}]), ValueError,
     r"batch\[1\]\['input_ids'\] holds 60000, outside the vocabulary \[0, 50257\)"),
    (lambda: collate_windows([{"input_ids": [1, 2], "labels": [1, 50300]}]), ValueError,
     r"batch\[0\]\['labels'\] holds 50300, outside the vocabulary \[0, 50257\) or -100"),
])
def test_training_data_refuses(call, error, pattern):
    refuses(error, pattern, call)


def test_training_data_accepts_what_it_should():
    assert TokenWindowDataset([1, 2, 999], 2, stride=1, vocab_size=1000)[1]["input_ids"].tolist() == [2, 999]
    assert len(TokenWindowDataset([1, 2, 60000], 2, stride=1, vocab_size=None)) == 2
    batch = collate_windows([{"input_ids": [1, 2], "labels": [-100, 2]}, {"input_ids": torch.tensor([3])}])
    assert batch["labels"].tolist() == [[-100, 2], [3, -100]]


def test_push_timeout_is_checked_before_any_request(tmp_path, monkeypatch):
    from gpt_scratch import push_to_hub

    for timeout, pattern in ((0, r"timeout must be a positive number of seconds, got 0"),
                             ((5, -1), r"timeout\[1\] \(read\) must be a positive number of seconds, got -1"),
                             ("soon", r"timeout must be seconds")):
        with pytest.raises((ValueError, TypeError), match=pattern):
            push_to_hub(tmp_path, "user/repo", token="hf_x", timeout=timeout)
    monkeypatch.setenv("GPT_SCRATCH_HUB_READ_TIMEOUT", "never")
    refuses(ValueError, r"GPT_SCRATCH_HUB_READ_TIMEOUT must be a positive number of seconds, got 'never'",
            lambda: push_to_hub(tmp_path, "user/repo", token="hf_x"))


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_the_checks_wait_on_the_device_once_per_forward(model, monkeypatch, cache_implementation):
    """The value checks are one reduction: a decoding step reads one tensor back (a device sync on a GPU)."""
    from gpt_scratch.modeling_gpt_scratch import GPTScratchModel

    reads, forwards, inside = [], [], []
    forward, as_bool, item = GPTScratchModel.forward, torch.Tensor.__bool__, torch.Tensor.item

    def counted_forward(self, *args, **kwargs):
        forwards.append(1)
        inside.append(1)
        try:
            return forward(self, *args, **kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(GPTScratchModel, "forward", counted_forward)
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: (reads.append(1) if inside else None) or as_bool(t))
    monkeypatch.setattr(torch.Tensor, "item", lambda t: (reads.append(1) if inside else None) or item(t))
    ids = torch.randint(0, 50256, (2, 8))
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                       cache_implementation=cache_implementation)
    assert len(forwards) == 6 and len(reads) == len(forwards)
