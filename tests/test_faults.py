"""Faults injected for real: a save killed part way, a disk that fills up, a read-only destination, a mount point,
Ctrl-C in the middle of a sharded re-save, a Hub that accepts the connection and never answers.

Each checks the promise of gpt_scratch.files.atomic_folder and gpt_scratch.network: the previous folder is left
byte for byte as it was, nothing half-written or temporary stays behind (a later save removes what a killed one
left), and no request waits forever. The filesystem faults run in a private mount namespace (`unshare -m`, as CI's
root may) on small tmpfs mounts.
"""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from fake_hub import FAKE_TOKEN, FakeHub, hub_env, network_guard_fixture, patch_hub_endpoint  # noqa: F401

from gpt_scratch import GPTScratchForCausalLM, load_tokenizer
from gpt_scratch.checkpoint import convert_checkpoint
from gpt_scratch.cli import main as cli_main
from gpt_scratch.hub import HubPushError, push_to_hub

TESTS = Path(__file__).parent
REPO = "fake-user/tiny-gpt"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256), the folder's exact state."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary folders of writes to `folder`, beside it."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A saved model folder with a tokenizer and a README: what a failed save must leave exactly as it is."""
    torch.manual_seed(0)
    folder = tmp_path / "model"
    GPTScratchForCausalLM(tiny_config(vocab_size=1000)).save_pretrained(folder, max_shard_size="100KB")
    load_tokenizer(model_max_length=64).save_pretrained(folder)
    (folder / "README.md").write_text("my notes\n")
    return folder


# ----- a 124M save killed part way --------------------------------------------------------------------------------

SAVE_124M = """
    import sys
    import torch
    from gpt_scratch import GPTScratchConfig, GPTScratchForCausalLM

    with torch.device("meta"):  # GPT-2 124M, uninitialised: what is written does not matter, how it is written does
        model = GPTScratchForCausalLM(GPTScratchConfig.from_preset("gpt2"))
    model = model.to_empty(device="cpu")
    model.tie_weights()
    print("saving", flush=True)
    model.save_pretrained(sys.argv[1])
    print("saved", flush=True)
"""


@pytest.mark.slow
def test_a_killed_124m_save_leaves_the_previous_folder_and_a_later_save_cleans_up(previous: Path):
    before = snapshot(previous)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SAVE_124M), str(previous)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout.readline() == "saving\n"
        weights = None
        while child.poll() is None:  # kill it once the 498 MB weights file is being written
            weights = next(previous.parent.glob(".model.*.partial/model.safetensors"), None)
            if weights is not None or next(previous.parent.glob(".model.*.partial/.tmp*"), None) is not None:
                child.kill()
                break
            time.sleep(0.001)
        child.wait(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL, "the save finished before it could be killed"
    assert child.stdout.read() == ""  # never got to "saved"

    assert snapshot(previous) == before
    (partial,) = leftovers(previous)
    assert partial.endswith(".partial") and (previous.parent / partial / "config.json").is_file()

    model = GPTScratchForCausalLM(tiny_config(vocab_size=1000))
    model.save_pretrained(previous)  # removes what the killed save left, keeps the tokenizer and README
    assert leftovers(previous) == []
    assert {"tokenizer.json", "README.md", "model.safetensors"} <= set(os.listdir(previous))
    assert not list(previous.glob("model-*.safetensors")) and not (previous / "model.safetensors.index.json").exists()
    loaded = GPTScratchForCausalLM.from_pretrained(previous)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


# ----- Ctrl-C, and a swap killed between its two renames -------------------------------------------------------


def test_ctrl_c_during_a_sharded_resave_leaves_the_old_shards(previous: Path, monkeypatch):
    import transformers.modeling_utils

    before = snapshot(previous)
    write = transformers.modeling_utils.safe_save_file
    written = []

    def write_then_interrupt(tensors, filename, metadata=None):
        if written:
            raise KeyboardInterrupt
        written.append(filename)
        write(tensors, filename, metadata=metadata)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        GPTScratchForCausalLM(tiny_config(vocab_size=1000)).save_pretrained(previous, max_shard_size="100KB")
    assert written and snapshot(previous) == before and leftovers(previous) == []
    assert GPTScratchForCausalLM.from_pretrained(previous).config.vocab_size == 1000


def test_without_an_atomic_exchange_a_swap_killed_between_renames_is_put_back(previous: Path, monkeypatch):
    from gpt_scratch import files

    monkeypatch.setattr(files, "_renameat2", lambda src, dst, flags: False)  # a filesystem without renameat2
    before = snapshot(previous)
    dead = subprocess.Popen(["true"])  # a process id that no longer runs
    dead.wait()
    # What a save killed after moving the old folder aside, before moving the new one in, leaves.
    moved = previous.with_name(f".model.{files._HOST}-{dead.pid}-0123abcd.old")
    os.rename(previous, moved)
    half = previous.with_name(f".model.{files._HOST}-{dead.pid}-0123abcd.partial")
    half.mkdir()
    (half / "config.json").write_text("{}")
    alive = previous.with_name(f".model.{files._HOST}-{os.getppid()}-4567cdef.partial")  # a save still running
    alive.mkdir()

    model = GPTScratchForCausalLM(tiny_config(vocab_size=1000))
    model.save_pretrained(previous)  # puts the old folder back first, then saves over it (two renames)
    assert leftovers(previous) == [alive.name]
    assert snapshot(previous)["tokenizer.json"] == before["tokenizer.json"]  # carried over from the restored folder
    assert (previous / "README.md").read_text() == "my notes\n"
    assert not (previous / "model.safetensors.index.json").exists()

    interrupted = previous.with_name("interrupted")
    model.save_pretrained(interrupted)
    before = snapshot(interrupted)
    renames = []

    def rename(src, dst):
        renames.append(dst)
        if len(renames) == 2:  # the new folder's move into place
            raise KeyboardInterrupt
        os.replace(src, dst)

    monkeypatch.setattr(files.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(interrupted)
    monkeypatch.undo()
    assert snapshot(interrupted) == before and leftovers(interrupted) == []


def test_the_working_directory_may_be_the_folder_saved(previous: Path, monkeypatch):
    monkeypatch.chdir(previous)
    GPTScratchForCausalLM(tiny_config(vocab_size=1000)).save_pretrained(".")
    assert Path.cwd() == previous and "model.safetensors" in os.listdir(".") and "README.md" in os.listdir(".")


# ----- full disk, read-only destination, mount point (a private mount namespace) ----------------------------------

IN_NAMESPACE = """
    import hashlib, logging, os, sys
    from pathlib import Path
    import torch
    sys.path.insert(0, sys.argv[1])
    from conftest import tiny_config
    from test_faults import leftovers, snapshot
    from gpt_scratch import GPTScratchForCausalLM, load_tokenizer
    from gpt_scratch.checkpoint import convert_checkpoint
    from gpt_scratch.cli import main as cli_main

    full, readonly, mounted, big_folder = (Path(arg) for arg in sys.argv[2:6])
    torch.manual_seed(0)
    small = GPTScratchForCausalLM(tiny_config(vocab_size=1000))  # 0.4 MB of shards
    big = GPTScratchForCausalLM(tiny_config())  # 13 MB: the disk fills part way through its shards
    tokenizer = load_tokenizer(model_max_length=64)  # tokenizer.json: 6.3 MB


    def refused(call, errno_, *words):
        try:
            call()
        except OSError as err:
            assert err.errno == errno_ and all(word in str(err) for word in words), (err.errno, str(err))
            return
        raise AssertionError("no error")


    # A full disk: the sharded model, then the tokenizer, then a conversion, each fails naming the folder and
    # leaves the previous one as it was.
    folder = full / "model"
    small.save_pretrained(folder, max_shard_size="100KB")
    tokenizer.save_pretrained(folder)
    before = snapshot(folder)
    refused(lambda: big.save_pretrained(folder, max_shard_size="1MB"), 28, f"could not write {folder}",
            "was left as it was")
    assert snapshot(folder) == before and leftovers(folder) == []
    loaded = GPTScratchForCausalLM.from_pretrained(folder)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in small.state_dict().items())
    refused(lambda: load_tokenizer(model_max_length=32).save_pretrained(folder), 28, f"could not write {folder}")
    assert snapshot(folder) == before and leftovers(folder) == []
    converted = full / "converted"
    refused(lambda: convert_checkpoint(big_folder, converted, progress=False), 28, f"could not write {converted}")
    assert not converted.exists() and leftovers(converted) == []
    print("full disk: previous folders untouched, nothing left behind")

    # A read-only filesystem: refused before any work, in one line from the command.
    refused(lambda: small.save_pretrained(readonly / "model"), 30, f"cannot write {readonly / 'model'}")
    assert cli_main(["convert", str(big_folder), str(readonly / "converted")]) == 1
    print("read-only: refused")

    # A mount point cannot be renamed: its entries are replaced one by one, old shards dropped, a failure still
    # leaves it as it was.
    small.save_pretrained(mounted, max_shard_size="100KB")
    tokenizer.save_pretrained(mounted)
    small.save_pretrained(mounted)
    names = sorted(os.listdir(mounted))
    assert "model.safetensors" in names and "tokenizer.json" in names, names
    assert not [n for n in names if n.startswith(("model-", "model.safetensors.index", "."))], names
    before = snapshot(mounted)
    refused(lambda: big.save_pretrained(mounted), 28, f"could not write {mounted}")
    assert snapshot(mounted) == before and sorted(os.listdir(mounted)) == names
    print("mount point: updated in place")
"""


def test_full_disk_read_only_destination_and_mount_point(tmp_path: Path):
    """As root in a mount namespace: an 8 MB tmpfs that fills, a read-only tmpfs, a 10 MB tmpfs as the destination."""
    full, readonly, mounted = (tmp_path / name for name in ("full", "readonly", "mounted"))
    for path in (full, readonly, mounted):
        path.mkdir()
    big = tmp_path / "big"
    torch.manual_seed(0)
    GPTScratchForCausalLM(tiny_config()).save_pretrained(big)
    mounts = (f"mount -t tmpfs -o size=8m tmpfs {full} && mount -t tmpfs -o ro,size=1m tmpfs {readonly} && "
              f"mount -t tmpfs -o size=10m tmpfs {mounted}")
    run = f'{mounts} && script="$1" && shift && exec "$0" -c "$script" "$@"'  # $0: python, $1: the script
    result = subprocess.run(["unshare", "-m", "sh", "-c", run, sys.executable, textwrap.dedent(IN_NAMESPACE),
                             str(TESTS), str(full), str(readonly), str(mounted), str(big)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert result.stdout.splitlines() == ["full disk: previous folders untouched, nothing left behind",
                                          "read-only: refused", "mount point: updated in place"]
    error = [line for line in result.stderr.splitlines() if line.startswith("gpt-scratch convert:")]
    assert error == [f"gpt-scratch convert: error: [Errno 30] cannot write {readonly / 'converted'}: {readonly} is "
                     f"on a read-only filesystem; choose a folder you can write to"]
    assert list(tmp_path.glob(".*")) == []


# ----- a Hub that never answers --------------------------------------------------------------------------------


@pytest.fixture
def silent_hub(network_guard, monkeypatch, tmp_path: Path):
    """A FakeHub that will hold the request to `hang`'s endpoint open and never answer it."""
    hubs = []

    def start(method: str, path: str) -> FakeHub:
        hub = FakeHub(require_token=FAKE_TOKEN).start()
        hubs.append(hub)
        hub.hang_next(method, path, times=10)
        patch_hub_endpoint(monkeypatch, hub, tmp_path)
        return hub

    yield start
    for hub in hubs:
        hub.stop()
        assert hub.server_errors == [] and hub.unhandled == []


def run_with_deadline(call, seconds: float = 120):
    """Run `call` in a thread; fail (rather than hang the suite) if it is still running after `seconds`."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as err:  # noqa: BLE001 (handed to the test)
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: hung"
    return outcome


def test_push_to_a_hub_that_never_answers_times_out_naming_the_endpoint(silent_hub, tmp_path: Path, monkeypatch):
    hub = silent_hub("POST", "/api/validate-yaml")  # where the push used to sit forever
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(staging))
    model = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True))

    outcome = run_with_deadline(lambda: push_to_hub(model, REPO, timeout=(2, 1)))
    error = outcome.get("error")
    assert isinstance(error, HubPushError), outcome
    assert str(error).startswith(f"validating the model card's metadata failed: the Hub did not answer in time "
                                 f"(POST {hub.url}/api/validate-yaml): ReadTimeout after 2")
    assert "GPT_SCRATCH_HUB_READ_TIMEOUT" in str(error) and error.endpoint == f"{hub.url}/api/validate-yaml"
    assert len(hub.held) == 1 and REPO not in hub.repos and list(staging.iterdir()) == []

    # The same from the command, its timeout from the environment.
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    monkeypatch.setenv("GPT_SCRATCH_HUB_READ_TIMEOUT", "1")
    outcome = run_with_deadline(lambda: cli_main(["push", str(folder), REPO]))
    assert outcome == {"value": 1} and REPO not in hub.repos


def test_ctrl_c_while_the_commit_is_unanswered_publishes_nothing(network_guard, tmp_path: Path):
    folder = tmp_path / "model"
    GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True)).save_pretrained(folder)
    staging = tmp_path / "staging"
    staging.mkdir()
    command = Path(sys.executable).with_name("gpt-scratch")
    with FakeHub(require_token=FAKE_TOKEN) as hub:
        hub.hang_next("POST", f"/api/models/{REPO}/commit/")
        env = {**hub_env(hub, tmp_path), "TMPDIR": str(staging), "GPT_SCRATCH_HUB_READ_TIMEOUT": "300"}
        child = subprocess.Popen([str(command), "push", str(folder), REPO], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(3000):  # until the commit request is in flight
                if hub.held or child.poll() is not None:
                    break
                time.sleep(0.02)
            assert hub.held, child.communicate(timeout=10)
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
        finally:
            child.kill()
        assert child.returncode != 0 and out == "", (child.returncode, out, err)
        assert hub.repos[REPO].commits == [] and not hub.calls("POST", f"/api/models/{REPO}/commit/")[1:]
    assert list(staging.iterdir()) == [] and err.strip().splitlines()[-1] == "gpt-scratch push: interrupted"


def test_convert_from_a_hub_that_never_answers_fails_saying_so(silent_hub, tmp_path: Path, monkeypatch):
    from huggingface_hub import constants

    hub = silent_hub("HEAD", "/fake-user/gpt2/resolve/")
    # huggingface_hub bounds file lookups itself: one try of HF_HUB_ETAG_TIMEOUT (10 s), then, with nothing in the
    # cache, 6 more of 60 s with backoff between them (its private _ETAG_RETRY_TIMEOUT): shortened here.
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    monkeypatch.setattr("huggingface_hub.file_download._ETAG_RETRY_TIMEOUT", 1)
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    outcome = run_with_deadline(lambda: convert_checkpoint("fake-user/gpt2", tmp_path / "out", progress=False))
    error = outcome.get("error")
    assert isinstance(error, ConnectionError), outcome
    assert str(error) == (f"fake-user/gpt2: could not reach the Hub ({hub.url}) to download config.json, and it is "
                          f"not in the local cache; check the network (each request waits HF_HUB_ETAG_TIMEOUT=1 s)")
    assert len(hub.held) == 7  # config.json's lookup and huggingface_hub's retries of it, then no other file's
    assert not (tmp_path / "out").exists()
