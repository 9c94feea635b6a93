"""pipeline("text-generation") from a saved folder, as users run it with openai-community/gpt2."""

import json
import os
from pathlib import Path
from threading import Thread

import pytest
import torch
from conftest import run_without_gpt_scratch, sharpen, tiny_config
from pipeline_calls import PROMPTS, run_calls
from transformers import TextIteratorStreamer, TextStreamer, pipeline, set_seed

from gpt_scratch import GPTScratchForCausalLM, load_tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    model = GPTScratchForCausalLM(tiny_config(qkv_bias=True, tie_word_embeddings=True))
    sharpen(model, model.config.emb_dim)  # continuations that depend on the whole prompt (batched == alone can fail)
    model.save_pretrained(path)
    load_tokenizer(model_max_length=64).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def generator(folder):
    return pipeline("text-generation", model=str(folder))


def _greedy_new_text(generator, prompt: str, max_new_tokens: int) -> str:
    tokenizer, model = generator.tokenizer, generator.model
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])


def test_pipeline_loads_our_model_and_tokenizer(generator):
    assert type(generator.model) is GPTScratchForCausalLM
    assert generator.tokenizer.padding_side == "left" and generator.tokenizer.pad_token_id == 50256


def test_single_prompt_greedy_equals_generate(generator):
    [result] = generator(PROMPTS[1], max_new_tokens=8, do_sample=False)
    assert result["generated_text"] == PROMPTS[1] + _greedy_new_text(generator, PROMPTS[1], 8)


def test_batched_output_equals_one_by_one(generator):
    batched = generator(PROMPTS, batch_size=3, max_new_tokens=8, do_sample=False)
    alone = [generator(p, max_new_tokens=8, do_sample=False) for p in PROMPTS]
    assert batched == alone
    assert [r[0]["generated_text"] for r in batched] == [p + _greedy_new_text(generator, p, 8) for p in PROMPTS]


def test_return_full_text_false_gives_only_new_text(generator):
    [result] = generator(PROMPTS[0], max_new_tokens=6, do_sample=False, return_full_text=False)
    assert result["generated_text"] == _greedy_new_text(generator, PROMPTS[0], 6)


def test_sampling_settings_reach_generate(generator):
    settings = dict(do_sample=True, temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.3, max_new_tokens=10)
    set_seed(7)
    results = generator(PROMPTS[1], num_return_sequences=3, **settings)
    assert len(results) == 3
    tokenizer, model = generator.tokenizer, generator.model
    inputs = tokenizer(PROMPTS[1], return_tensors="pt")
    set_seed(7)
    expected = model.generate(**inputs, num_return_sequences=3, **settings)
    assert [r["generated_text"] for r in results] == tokenizer.batch_decode(expected)
    set_seed(8)
    assert generator(PROMPTS[1], num_return_sequences=3, **settings) != results


def test_stop_strings_end_the_text(generator):
    free = _greedy_new_text(generator, PROMPTS[2], 12)
    stop = free[len(free) // 2:len(free) // 2 + 2]
    assert stop.strip(), free
    # The pipeline's name for it is stop_sequence; generate() takes stop_strings plus the tokenizer.
    [result] = generator(PROMPTS[2], max_new_tokens=12, do_sample=False, stop_sequence=stop, return_full_text=False)
    text = result["generated_text"]
    assert stop in text and len(text) < len(free)
    assert free.startswith(text)
    [direct] = generator(PROMPTS[2], max_new_tokens=12, do_sample=False, stop_strings=[stop],
                         tokenizer=generator.tokenizer, return_full_text=False)
    assert direct["generated_text"] == text


def test_text_streamer_and_iterator_streamer(generator, capsys):
    tokenizer, model = generator.tokenizer, generator.model
    inputs = tokenizer(PROMPTS[1], return_tensors="pt")
    expected = _greedy_new_text(generator, PROMPTS[1], 8)

    model.generate(**inputs, max_new_tokens=8, do_sample=False, streamer=TextStreamer(tokenizer, skip_prompt=True))
    assert capsys.readouterr().out.rstrip("\n") == expected

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    thread = Thread(target=model.generate, kwargs=dict(**inputs, max_new_tokens=8, do_sample=False, streamer=streamer))
    thread.start()
    pieces = list(streamer)
    thread.join()
    assert "".join(pieces) == expected and len(pieces) >= 1


REMOTE_SCRIPT = """
    import json, sys
    sys.path.insert(0, sys.argv[2])  # tests/, for pipeline_calls
    from pipeline_calls import run_calls
    from transformers import pipeline

    generator = pipeline("text-generation", model=sys.argv[1], trust_remote_code=True)
    assert type(generator.model).__module__.startswith("transformers_modules")
    print(json.dumps(run_calls(generator)))
    """


def test_pipeline_with_trust_remote_code_where_gpt_scratch_is_not_installed(folder, generator, tmp_path):
    expected = run_calls(generator)
    assert expected["streamed"] == expected["single"][0]["generated_text"][len(PROMPTS[1]):]
    assert len(expected["sampled"]) == 2 and expected["stopped"] != expected["new_text_only"]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = run_without_gpt_scratch(REMOTE_SCRIPT, folder, Path(__file__).parent, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(expected))
