"""Serving: `gpt-scratch serve` (transformers' OpenAI-compatible server) over real HTTP on loopback, and continuous
batching (`generate_batch`), each giving the tokens `generate` gives."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import CACHE_NAME, GREEDY, assert_uses_whole_prompt, sharpen, tiny_config
from transformers import ContinuousBatchingConfig, GenerationConfig

from gpt_scratch import GPTScratchForCausalLM, load_tokenizer
from gpt_scratch.cli import main
from gpt_scratch.serving import serve

# Prompts of different lengths (3, 5, 1 and 9 tokens), so a batch mixes prefill and decode steps.
PROMPTS = ["Every effort moves", "I had always thought Jack", "Hello",
           "It had always been my fancy to put the question"]
NEW_TOKENS = 8
# A small paged cache: by default continuous batching sizes it to 90% of free memory, on a CPU the machine's RAM.
CACHE = ContinuousBatchingConfig(num_blocks=4, max_batch_tokens=64)
# Loopback only: a proxy from the environment must not see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("served")
    model = GPTScratchForCausalLM(tiny_config(qkv_bias=True, tie_word_embeddings=True))
    sharpen(model, model.config.emb_dim)  # continuations that depend on the whole prompt
    model.save_pretrained(path)
    load_tokenizer(model_max_length=64).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def expected(folder):
    """What `generate` continues each prompt with (greedy), as text and as a token count."""
    model, tokenizer = GPTScratchForCausalLM.from_pretrained(folder).eval(), load_tokenizer()
    assert_uses_whole_prompt(model, tokenizer(PROMPTS[3], return_tensors="pt").input_ids, NEW_TOKENS)
    texts = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        texts.append(tokenizer.decode(model.generate(ids, max_new_tokens=NEW_TOKENS, **GREEDY)[0, ids.shape[1]:]))
    assert len(set(texts)) == len(texts)
    return texts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with _OPENER.open(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.fixture(params=[False, True], ids=["sequential", "continuous-batching"])
def server(request, folder, tmp_path):
    """`gpt-scratch serve FOLDER` in its own process, up once /health answers."""
    port = _free_port()
    command = [sys.executable, "-m", "gpt_scratch.cli", "serve", str(folder), "--port", str(port)]
    if request.param:
        command += ["--continuous-batching", "--cb-num-blocks", str(CACHE.num_blocks),
                    "--cb-max-batch-tokens", str(CACHE.max_batch_tokens)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    (tmp_path / "hf_home" / "hub").mkdir(parents=True)  # /v1/models lists it (transformers 5.23 fails without one)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not come up within 180 s"
            try:
                if _request(url + "/health") == {"status": "ok"}:
                    break
            except OSError:
                time.sleep(0.5)
        yield url, request.param
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


def test_serve_completions_equal_generate(server, folder, expected):
    url, concurrent = server
    assert isinstance(_request(url + "/v1/models")["data"], list)  # 5.24 lists the served folder, 5.23 the Hub cache

    def complete(prompt: str) -> dict:
        return _request(url + "/v1/completions", {"model": str(folder), "prompt": prompt, "max_tokens": NEW_TOKENS,
                                                  "temperature": 0})

    if concurrent:  # all at once: continuous batching schedules them together
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            answers = list(pool.map(complete, PROMPTS))
    else:
        answers = [complete(prompt) for prompt in PROMPTS]
    assert [a["choices"][0]["text"] for a in answers] == expected
    assert [a["usage"]["completion_tokens"] for a in answers] == [NEW_TOKENS] * len(PROMPTS)


# transformers 5.23's paged eager kernel updates the cache itself and refuses a model that has updated it (5.24's
# model-side update, which ours makes, is what its Llama does): eager continuous batching needs 5.24.
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"] if CACHE_NAME == "cache" else ["sdpa"])
def test_continuous_batching_equals_generate(folder, attn_implementation):
    model = GPTScratchForCausalLM.from_pretrained(folder, attn_implementation=attn_implementation).eval()
    tokenizer = load_tokenizer()
    prompts = [tokenizer(p).input_ids for p in PROMPTS]
    expected = [model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, **GREEDY)[0, len(ids):].tolist()
                for ids in prompts]
    config = GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=-1, pad_token_id=50256)
    outputs = model.generate_batch(prompts, generation_config=config, continuous_batching_config=CACHE, warmup=False)
    by_prompt = {tuple(out.prompt_ids): out.generated_tokens for out in outputs.values()}
    assert [by_prompt[tuple(ids)] for ids in prompts] == expected


def test_serve_checks_its_arguments(folder, tmp_path, capsys):
    (tmp_path / "no-tokenizer").mkdir()
    (tmp_path / "no-tokenizer" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="has no tokenizer"):
        serve(tmp_path / "no-tokenizer")
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hub repo id"):
        serve(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"port must be an integer in \[1, 65535\], got 70000"):
        serve(folder, port=70000)
    with pytest.raises(TypeError, match="model must be"):
        serve(None)
    assert main(["serve", str(folder), "--port", "0"]) == 2
    assert "--port: 0 must be >= 1" in capsys.readouterr().err


def test_serving_engines_attention_contract(folder):
    """What vLLM's and SGLang's transformers backends need, checked on CPU with an engine-like attention function:
    the base model (auto_map's AutoModel) opts in (`is_backend_compatible`), runs the kernel registered in
    transformers' ALL_ATTENTION_FUNCTIONS with each layer's `layer_idx`, hands it the engine's own keyword arguments
    (vLLM passes its attention layers so), builds no mask of its own, and gives the hidden states sdpa gives."""
    from torch.nn import functional as F
    from transformers import AutoConfig, AutoModel
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    seen = []

    def engine_attention(module, query, key, value, attention_mask, scaling=None, engine_state=None, **kwargs):
        seen.append((module.layer_idx, engine_state, attention_mask))
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling)  # (B, H, T, D)
        return out.transpose(1, 2), None

    ALL_ATTENTION_FUNCTIONS.register("engine_probe", engine_attention)
    assert AutoConfig.from_pretrained(folder).auto_map["AutoModel"] == "modeling_gpt_scratch.GPTScratchModel"
    reference = AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    engine = AutoModel.from_pretrained(folder, attn_implementation="engine_probe").eval()
    assert type(engine).is_backend_compatible()
    ids = load_tokenizer()(PROMPTS[3], return_tensors="pt").input_ids
    positions = torch.arange(ids.shape[1])[None]
    with torch.no_grad():
        hidden = engine(input_ids=ids, position_ids=positions, use_cache=False, engine_state="state",
                        return_dict=False)[0]
        expected = reference(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state
    assert seen == [(0, "state", None), (1, "state", None)]
    torch.testing.assert_close(hidden, expected)
