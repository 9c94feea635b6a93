"""Serve a model over HTTP with transformers' own OpenAI-compatible server (`transformers serve`).

`transformers serve FOLDER --trust-remote-code` cannot load a custom model: its loader takes the class named by
config.json's `architectures[0]` as an attribute of the `transformers` module and never reads `auto_map`. `serve`
registers our classes (`gpt_scratch.register()`: the Auto classes and the tokenizer), puts them where that loader
looks, and runs transformers' server unchanged: `POST /v1/completions`, `POST /v1/chat/completions` (for a tokenizer
with a chat template), `GET /v1/models`, `GET /health`. It listens on 127.0.0.1 unless told otherwise: the server
has no authentication.

`continuous_batching=True` is transformers' `--continuous-batching` (paged KV cache, requests batched as they come);
on a CPU it runs with "sdpa" (the default) or "eager" attention (eager needs transformers 5.24: 5.23's paged eager
kernel expects to update the cache itself).

The server's packages (FastAPI, uvicorn, openai) are the `serve` extra: `pip install 'gpt-scratch[serve]'`.
"""

import os
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


def expose_to_transformers_serve() -> None:
    """Register gpt_scratch with the Auto classes and give the `transformers` module our model classes by name, where
    transformers' server looks a model's class up (`getattr(transformers, config.architectures[0])`)."""
    import transformers

    from . import modeling_gpt_scratch, register

    register()
    for name in modeling_gpt_scratch.__all__:
        setattr(transformers, name, getattr(modeling_gpt_scratch, name))


def _check_model(model: str | os.PathLike) -> str:
    """A local folder must hold a config and a tokenizer; anything else is left to the Hub (a repo id)."""
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise TypeError(f"model must be a folder's path or a Hub repo id, got {model!r}")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: expected a folder written by save_pretrained")
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise FileNotFoundError(f"{path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); the server "
                                    f"needs one: gpt_scratch.load_tokenizer().save_pretrained({str(path)!r})")
        return str(path)
    if path.exists() or str(model).startswith((".", "/", "~")) or str(model).count("/") > 1:
        raise FileNotFoundError(f"model {str(model)!r} is neither a folder nor a Hub repo id ('namespace/name')")
    return str(model)


def serve(
    model: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    continuous_batching: bool = False,
    cb_num_blocks: int | None = None,
    cb_max_batch_tokens: int | None = None,
    attn_implementation: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    log_level: str = "warning",
    non_blocking: bool = False,
) -> Any:
    """Load `model` (a folder written by save_pretrained, with a tokenizer, or a Hub repo id) and serve it with
    transformers' OpenAI-compatible server on http://HOST:PORT.

    `cb_num_blocks` (blocks of 256 tokens for every layer) and `cb_max_batch_tokens` size continuous batching's paged
    cache and batches; by default transformers sizes the cache to 90% of the free memory of the device, on a CPU
    of the machine's RAM.

    Blocks until the server stops (Ctrl-C), unless `non_blocking`: then the server runs in a thread and the running
    `transformers.cli.serve.Serve` is returned (`.kill_server()` stops it).

    Raises:
        TypeError: `model` is not a path or repo id.
        FileNotFoundError: a folder without config.json or tokenizer files, or a path that does not exist.
        ValueError: `port` outside [1, 65535], an empty `host`, cache sizes that are not positive integers, or
            options transformers' server refuses.
        ImportError: the server's packages are missing (`pip install 'gpt-scratch[serve]'`).
    """
    model = _check_model(model)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in [1, 65535], got {port!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be an address to listen on, such as 127.0.0.1, got {host!r}")
    for name, value in (("cb_num_blocks", cb_num_blocks), ("cb_max_batch_tokens", cb_max_batch_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        raise ImportError("serving needs FastAPI, uvicorn and openai: pip install 'gpt-scratch[serve]'")
    expose_to_transformers_serve()
    from transformers.cli.serve import Serve

    return Serve(force_model=model, host=host, port=port, continuous_batching=continuous_batching,
                 cb_num_blocks=cb_num_blocks, cb_max_batch_tokens=cb_max_batch_tokens,
                 attn_implementation=attn_implementation, device=device, dtype=dtype, log_level=log_level,
                 non_blocking=non_blocking)


__all__ = ["expose_to_transformers_serve", "serve"]
