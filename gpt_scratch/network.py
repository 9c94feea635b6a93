"""Timeouts for every request gpt_scratch makes to the Hugging Face Hub, set in one place.

huggingface_hub sends most requests (`whoami`, the model card validator, `create_repo`, `create_commit`, ...) through
one shared HTTP client that has no timeout: a Hub that accepts the connection and never answers holds the request
forever. Its file downloads pass their own timeouts (`HF_HUB_ETAG_TIMEOUT`, `HF_HUB_DOWNLOAD_TIMEOUT`, 10 s each), which
stay as they are. `hub_timeouts()` gives the shared client connect and read timeouts while gpt_scratch talks to the Hub
(`push_to_hub`, and the Hub lookups of `convert` and `from_pretrained`), then puts its own back.

The defaults (10 s to connect, 60 s of silence while waiting for an answer) are changed by `timeout=` where a function
takes it, or for every call by GPT_SCRATCH_HUB_CONNECT_TIMEOUT and GPT_SCRATCH_HUB_READ_TIMEOUT (seconds).
Requests that huggingface_hub retries (uploads, with backoff) may take several timeouts before they fail; the Xet
uploader (`hf_xet`) runs its own network stack with its own timeouts.
"""

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["HubTimeouts", "hub_timeouts", "resolve_timeouts"]

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV = "GPT_SCRATCH_HUB_CONNECT_TIMEOUT", "GPT_SCRATCH_HUB_READ_TIMEOUT"


@dataclass(frozen=True)
class HubTimeouts:
    """Seconds to wait for a connection, and for each answer (or each chunk of one) once connected."""

    connect: float
    read: float


def resolve_timeouts(timeout: float | tuple[float, float] | HubTimeouts | None = None) -> HubTimeouts:
    """The timeouts to use: `timeout` (seconds for both, or (connect, read)), else the environment, else the defaults.

    Raises:
        ValueError: a timeout that is not a positive, finite number of seconds (the message names where it came from).
        TypeError: `timeout` of another type.
    """
    if isinstance(timeout, HubTimeouts):
        return HubTimeouts(_seconds("timeout.connect", timeout.connect), _seconds("timeout.read", timeout.read))
    if timeout is None:
        return HubTimeouts(_seconds(CONNECT_TIMEOUT_ENV, os.environ.get(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT)),
                           _seconds(READ_TIMEOUT_ENV, os.environ.get(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT)))
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return HubTimeouts(_seconds("timeout[0] (connect)", timeout[0]), _seconds("timeout[1] (read)", timeout[1]))
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return HubTimeouts(_seconds("timeout", timeout), _seconds("timeout", timeout))
    raise TypeError(f"timeout must be seconds (a number), a (connect, read) pair or None, got {timeout!r}")


def _seconds(name: str, value: object) -> float:
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


@contextmanager
def hub_timeouts(timeout: float | tuple[float, float] | HubTimeouts | None = None) -> Iterator[HubTimeouts]:
    """Give huggingface_hub's shared HTTP client these timeouts (see `resolve_timeouts`) for the block.

    The client is shared by the whole process, so other threads' requests get them too while the block runs.
    """
    from huggingface_hub.utils import get_session

    timeouts = resolve_timeouts(timeout)
    client = get_session()
    previous = client.timeout
    client.timeout = type(previous)(timeouts.read, connect=timeouts.connect)  # httpx's Timeout, whichever httpx
    try:
        yield timeouts
    finally:
        client.timeout = previous
