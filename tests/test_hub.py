"""push_to_hub and `gpt-scratch push` against a loopback Hub (tests/fake_hub.py) with the real huggingface_hub client.

What arrives (paths, bytes, one commit, the card parsed back, the token only in Authorization headers), both upload
variants (inline, and classic LFS with Xet disabled), branches and pull requests, failures (HTTP errors, connection
refused, no token, bad input) and the round trip: a process where gpt_scratch cannot be imported downloads the repo,
loads it through the Auto classes and generates what the local model generates.
"""

import json
import logging
import math
import os
import runpy
import subprocess
import sys
import tempfile
import textwrap
import traceback
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import THE_VERDICT, run_without_gpt_scratch, tiny_config
from fake_hub import (
    FAKE_TOKEN,
    FakeHub,
    NetworkGuard,
    hub_env,
    network_guard_fixture,  # noqa: F401 (fixture)
    patch_hub_endpoint,
)
from huggingface_hub import EvalResult, ModelCard, ModelCardData, constants
from transformers import pipeline

from gpt_scratch import GPTScratchForCausalLM, GPTScratchModel, load_tokenizer
from gpt_scratch.cli import main as cli_main
from gpt_scratch.hub import HubPushError, push_to_hub

REPO = "fake-user/tiny-gpt"
WRONG_TOKEN = "hf_wrongToken0123456789"
WRITE_ROUTES = {"whoami", "create_repo", "create_branch", "preupload", "lfs_batch", "lfs_verify", "commit"}
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "configuration_gpt_scratch.py",
               "modeling_gpt_scratch.py", "tokenizer.json", "tokenizer_config.json"}
PACKAGE = Path(__file__).resolve().parents[1] / "gpt_scratch"
# huggingface_hub's LFS PUT passes a file to httpx2 as data=, which httpx2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


@pytest.fixture
def model() -> GPTScratchForCausalLM:
    # Tied head: the 50257-token embedding is stored once (6.4 MB), which keeps uploads quick.
    return GPTScratchForCausalLM(tiny_config(tie_word_embeddings=True, qkv_bias=True)).eval()


@pytest.fixture
def staging_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where tempfile puts the staging folder, so a test can check that nothing is left behind."""
    root = tmp_path / "tempdir"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def start_hub(network_guard: NetworkGuard, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Starts a FakeHub that requires FAKE_TOKEN and points the in-process client at it, with HF_TOKEN=`token`.

    `lfs`: files of 1 MiB or more go through the classic LFS upload (Xet disabled). Stopped and checked at teardown.
    """
    hubs = []

    def start(*, lfs: bool = False, token: str | None = FAKE_TOKEN) -> FakeHub:
        hub = FakeHub(require_token=FAKE_TOKEN, lfs_threshold=2**20 if lfs else None).start()
        hubs.append(hub)
        patch_hub_endpoint(monkeypatch, hub, tmp_path, token=token, disable_xet=lfs)
        return hub

    yield start
    for hub in hubs:
        hub.stop()
        assert hub.server_errors == [] and hub.unhandled == []


@pytest.fixture
def hub(start_hub) -> FakeHub:
    """Every file inline; the client sends FAKE_TOKEN from HF_TOKEN."""
    return start_hub()


def routes(hub: FakeHub) -> list[str | None]:
    return [r.route for r in hub.requests]


def assert_token_only_in_authorization(hub: FakeHub, token: str = FAKE_TOKEN) -> None:
    for req in hub.requests:
        if req.route in WRITE_ROUTES:
            assert req.token == token, req.path
        assert token not in req.path + json.dumps(req.query), req.path
        assert token.encode() not in req.body, req.path
        assert all(token not in value for name, value in req.headers.items() if name != "authorization")


def saved_folder(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    load_tokenizer(model_max_length=model.config.context_length).save_pretrained(folder)
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def card_of(hub: FakeHub, revision: str = "main") -> ModelCard:
    return ModelCard(hub.files(REPO, revision)["README.md"].decode())


def full_error(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


# --------------------------------------------------------------------------------------------- what arrives


@pytest.mark.parametrize("upload", ["inline", "lfs"])
def test_push_publishes_the_model_in_one_commit(upload: str, start_hub, model, tmp_path: Path,
                                                staging_root: Path) -> None:
    hub = start_hub(lfs=upload == "lfs")
    expected = folder_files(saved_folder(model, tmp_path / "expected"))

    info = push_to_hub(model, "tiny-gpt")  # no namespace: the token's account

    (commit,) = hub.repos[REPO].commits
    files = hub.files(REPO)
    assert files.keys() == MODEL_FILES | {"README.md"}
    assert {path: files[path] for path in MODEL_FILES} == expected
    assert files["README.md"].startswith(b"---\nlibrary_name: transformers\n")
    assert files["modeling_gpt_scratch.py"] == (PACKAGE / "modeling_gpt_scratch.py").read_bytes()
    assert json.loads(files["config.json"])["auto_map"]["AutoModelForCausalLM"] == (
        "modeling_gpt_scratch.GPTScratchForCausalLM")
    parameters = model.num_parameters()  # the tied head counted once
    assert (info.oid, info.repo_url.repo_id, commit.message) == (
        commit.oid, REPO, f"Upload GPTScratchForCausalLM ({parameters:,} parameters) with gpt_scratch")
    assert routes(hub)[:5] == ["whoami", "validate_yaml", "create_repo", "validate_yaml", "preupload"]
    assert routes(hub)[-1] == "commit"
    if upload == "lfs":
        large = {"model.safetensors", "tokenizer.json"}
        assert commit.lfs_paths == large
        assert Counter(routes(hub)[5:-1]) == {"lfs_batch": 1, "lfs_put": 2, "lfs_verify": 2}
        assert sorted(put.body for put in hub.calls("PUT")) == sorted(expected[path] for path in large)
    else:
        assert commit.lfs_paths == frozenset() and len(routes(hub)) == 6
    assert_token_only_in_authorization(hub)
    assert list(staging_root.iterdir()) == []  # the staging folder is gone


def test_model_card_is_filled_from_the_model_and_card_data(hub: FakeHub, model) -> None:
    card_data = {
        "license": "mit",
        "datasets": ["karpathy/tiny_shakespeare"],
        "language": "en",
        "tags": ["tiny"],
        "base_model": "openai-community/gpt2",
        "training_results": {"steps": 600, "train_loss": 3.21, "notes": "a | b"},
        "eval_results": [{"task_type": "text-generation", "dataset_type": "karpathy/tiny_shakespeare",
                          "dataset_name": "Tiny Shakespeare", "dataset_split": "test", "metric_type": "perplexity",
                          "metric_value": 41.5}],
    }
    tokenizer = load_tokenizer(model_max_length=64)
    tokenizer.padding_side = "right"

    push_to_hub(model, REPO, tokenizer=tokenizer, card_data=card_data)

    card = card_of(hub)
    assert card.data.to_dict() == {
        "base_model": "openai-community/gpt2",
        "datasets": ["karpathy/tiny_shakespeare"],
        "language": "en",
        "library_name": "transformers",
        "license": "mit",
        "pipeline_tag": "text-generation",
        "tags": ["gpt_scratch", "gpt2", "tiny"],
        "model-index": [{"name": "tiny-gpt", "results": [{
            "task": {"type": "text-generation"},
            "dataset": {"name": "Tiny Shakespeare", "type": "karpathy/tiny_shakespeare", "split": "test"},
            "metrics": [{"type": "perplexity", "value": 41.5}]}]}],
    }
    assert card.data.eval_results == [EvalResult(**card_data["eval_results"][0])]
    parameters = sum(p.numel() for p in model.parameters())
    for line in [
        "# tiny-gpt",
        f'AutoModelForCausalLM.from_pretrained("{REPO}", trust_remote_code=True)',
        f'AutoTokenizer.from_pretrained("{REPO}", trust_remote_code=True)',
        "It derives from [openai-community/gpt2](https://huggingface.co/openai-community/gpt2).",
        "| class | `GPTScratchForCausalLM` |",
        "| preset | none (custom configuration) |",
        f"| parameters | {parameters:,} |",
        "| dtype | float32 |",
        "| emb_dim | 32 |\n| n_layers | 2 |\n| n_heads | 4 |\n| context_length | 64 |\n| vocab_size | 50257 |",
        "| qkv_bias | True |\n| tie_word_embeddings | True |",
        "Trained on [karpathy/tiny_shakespeare](https://huggingface.co/datasets/karpathy/tiny_shakespeare).",
        "| steps | 600 |\n| train_loss | 3.21 |\n| notes | a \\| b |",
        "| text-generation | Tiny Shakespeare | test | perplexity | 41.5 |",
        "That code\nneeds `transformers>=5.23,<6` (tested at both ends of the range) and PyTorch.",
    ]:
        assert line in card.text, line
    assert not any(jinja in card.content for jinja in ("{{", "{%", "{#")) and "No training details" not in card.text
    assert json.loads(hub.files(REPO)["tokenizer_config.json"])["padding_side"] == "right"


def test_a_folder_from_train_keeps_its_training_table(hub: FakeHub, model, tmp_path: Path) -> None:
    folder = saved_folder(model, tmp_path / "trained")
    run = {"data": "/data/the-verdict.txt", "data_tokens": 5145, "train_tokens": 4631, "validation_tokens": 514,
           "steps": 30, "epochs": 1.5, "tokens_seen": 15360, "context_length": 256, "global_batch_size": 2,
           "train_loss": 6.01234, "validation_loss": 6.6543, "validation_perplexity": 776.61}
    (folder / "metrics.json").write_text(json.dumps(run))  # what gpt-scratch train writes, in part
    push_to_hub(folder, REPO)
    for row in ("| training text | the-verdict.txt (5,145 tokens, 4,631 for training, 514 for validation) |",
                "| steps | 30 |", "| tokens seen | 15,360 |", "| final validation loss | 6.6543 |"):
        assert row in card_of(hub).text, row
    push_to_hub(folder, REPO, card_data={"training_results": {"steps": 31}})  # the caller's table wins
    assert "| steps | 31 |" in card_of(hub).text and "tokens seen" not in card_of(hub).text
    (folder / "metrics.json").write_text("{}")  # not a train run's: no table, and still published
    push_to_hub(folder, REPO)
    assert "No training details were given" in card_of(hub).text


def test_card_without_extras_and_base_model_from_the_hub_repo_the_model_came_from(
    hub: FakeHub, model, tmp_path: Path
) -> None:
    model.config.name_or_path = "someone/their-gpt"  # as from_pretrained("someone/their-gpt") leaves it
    push_to_hub(model, REPO, card_data=ModelCardData(language=["en"]))
    card = card_of(hub)
    assert card.data.to_dict() == {"base_model": "someone/their-gpt", "language": ["en"],
                                   "library_name": "transformers", "license": "apache-2.0",
                                   "pipeline_tag": "text-generation", "tags": ["gpt_scratch", "gpt2"]}
    assert "No training details were given" in card.text and "No evaluation results were given" in card.text

    model.config.name_or_path = str(tmp_path)  # loaded from a local folder: no base model
    push_to_hub(model, REPO)
    assert "base_model" not in card_of(hub).data.to_dict()


def test_base_model_instance_is_published_for_feature_extraction(hub: FakeHub) -> None:
    base = GPTScratchModel(tiny_config(tie_word_embeddings=True)).eval()
    push_to_hub(base, REPO)
    card = card_of(hub)
    assert card.data.pipeline_tag == "feature-extraction"
    assert f'AutoModel.from_pretrained("{REPO}", trust_remote_code=True)' in card.text
    assert json.loads(hub.files(REPO)["config.json"])["architectures"] == ["GPTScratchModel"]


def test_push_folder_with_shards_its_tokenizer_and_missing_code(
    start_hub, model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = start_hub(lfs=True)
    folder = tmp_path / "model"
    model.save_pretrained(folder, max_shard_size="2MB")
    tokenizer = load_tokenizer(model_max_length=64)
    tokenizer.padding_side = "right"  # the folder's own tokenizer, distinguishable from the default one
    tokenizer.save_pretrained(folder)
    for name in ("modeling_gpt_scratch.py", "configuration_gpt_scratch.py"):
        (folder / name).unlink()
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "optimizer.pt").write_bytes(b"not for the hub")
    (folder / "README.md").write_text("# my notes\n")
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 1

    with caplog.at_level(logging.WARNING, logger="gpt_scratch.hub"):
        push_to_hub(folder, REPO)

    files = hub.files(REPO)
    assert files.keys() == (MODEL_FILES - {"model.safetensors"}) | {"README.md", "model.safetensors.index.json",
                                                                   *shards}
    for name in ["model.safetensors.index.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 *shards]:
        assert files[name] == (folder / name).read_bytes(), name
    for name in ("modeling_gpt_scratch.py", "configuration_gpt_scratch.py"):
        assert files[name] == (PACKAGE / name).read_bytes()
    published_config = json.loads(files["config.json"])
    assert published_config.pop("auto_map") == {
        "AutoConfig": "configuration_gpt_scratch.GPTScratchConfig",
        "AutoModel": "modeling_gpt_scratch.GPTScratchModel",
        "AutoModelForCausalLM": "modeling_gpt_scratch.GPTScratchForCausalLM",
        "AutoModelForSequenceClassification": "modeling_gpt_scratch.GPTScratchForSequenceClassification",
    }
    assert published_config == config
    assert files["README.md"].startswith(b"---\n") and b"# my notes" not in files["README.md"]
    assert "not published from" in caplog.text and "README.md, optimizer.pt" in caplog.text
    assert len(hub.repos[REPO].commits) == 1
    assert hub.repos[REPO].commits[0].lfs_paths == {name for name, data in files.items() if len(data) >= 2**20}


def test_revision_branch_and_pull_request(hub: FakeHub, model) -> None:
    first = push_to_hub(model, REPO)
    with torch.no_grad():
        model.model.final_norm.shift.add_(1.0)

    dev = push_to_hub(model, REPO, revision="dev", commit_message="Retrained")
    pr = push_to_hub(model, REPO, create_pr=True)

    repo = hub.repos[REPO]
    assert repo.branches["main"] == first.oid and repo.branches["dev"] == dev.oid
    assert repo.commit(dev.oid).parent == first.oid and repo.commit(dev.oid).message == "Retrained"
    assert (pr.pr_revision, repo.branches["refs/pr/1"]) == ("refs/pr/1", pr.oid)
    assert pr.pr_url == f"{hub.url}/{REPO}/discussions/1"
    changed = hub.files(REPO, "dev")["model.safetensors"]
    assert hub.files(REPO, "refs/pr/1")["model.safetensors"] == changed != hub.files(REPO)["model.safetensors"]
    assert [r.route for r in hub.calls("POST", f"/api/models/{REPO}/branch/")] == ["create_branch"]

    with torch.no_grad():
        model.model.final_norm.shift.add_(1.0)
    update = push_to_hub(model, REPO, revision="refs/pr/1")  # another commit onto the open pull request
    assert repo.branches["refs/pr/1"] == update.oid and repo.commit(update.oid).parent == pr.oid
    assert len(hub.calls("POST", f"/api/models/{REPO}/branch/")) == 1  # a pull request's ref is not a new branch


# --------------------------------------------------------------------------------------------- the round trip


LOADER = textwrap.dedent(
    """
    import contextlib, io, os, re, sys

    import torch
    from huggingface_hub import ModelCard, snapshot_download
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo, expected_file = sys.argv[1:]
    expected = torch.load(expected_file)
    print("FILES", " ".join(sorted(os.listdir(snapshot_download(repo)))))
    model = AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    torch.testing.assert_close(model(expected["input_ids"]).logits, expected["logits"], rtol=0, atol=0)
    generated = model.generate(expected["input_ids"], max_new_tokens=8, do_sample=False)
    assert torch.equal(generated, expected["generated"]), (generated, expected["generated"])
    # No trust_remote_code: AutoTokenizer's AutoConfig call would ask on a terminal; stdin is closed here.
    tokenizer = AutoTokenizer.from_pretrained(repo)
    assert type(tokenizer).__name__ == "TokenizersBackend", type(tokenizer)
    assert tokenizer(expected["prompt"])["input_ids"] == expected["input_ids"][0].tolist()
    # The card's usage snippet, as published.
    snippet = re.search(r"```python\\n(.*?)```", ModelCard.load(repo).text, re.S).group(1)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(snippet, {})
    assert output.getvalue().strip() == expected["snippet_output"], output.getvalue()
    print("ROUND TRIP OK")
    """
)


def test_cli_push_then_load_where_gpt_scratch_is_not_installed(
    model, network_guard: NetworkGuard, tmp_path: Path
) -> None:
    folder = saved_folder(model, tmp_path / "model")
    tokenizer = load_tokenizer(model_max_length=64)
    prompt = "Every effort moves you"
    input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    torch.save({
        "prompt": prompt,
        "input_ids": input_ids,
        "logits": model(input_ids).logits.detach(),
        "generated": model.generate(input_ids, max_new_tokens=8, do_sample=False),
        "snippet_output": generator(prompt, max_new_tokens=20, do_sample=False)[0]["generated_text"],
    }, tmp_path / "expected.pt")
    command = Path(sys.executable).with_name("gpt-scratch")
    assert command.is_file(), f"{command}: the console script is not installed (pip install -e .)"

    with FakeHub(require_token=FAKE_TOKEN) as hub:
        env = {**hub_env(hub, tmp_path), "HF_HUB_DISABLE_PROGRESS_BARS": "0"}  # show the staging progress bar
        card_data = json.dumps({"license": "mit", "datasets": "karpathy/tiny_shakespeare"})
        pushed = subprocess.run([str(command), "push", str(folder), REPO, "--card-data", card_data,
                                 "--commit-message", "First upload"],
                                env=env, capture_output=True, text=True, timeout=300)
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        (commit,) = hub.repos[REPO].commits
        assert pushed.stdout.strip() == f"published {folder} to {REPO}: {hub.url}/{REPO}/commit/{commit.oid}"
        assert "Staging model: 100%" in pushed.stderr
        assert commit.message == "First upload" and card_of(hub).data.license == "mit"

        loaded = run_without_gpt_scratch(LOADER, REPO, tmp_path / "expected.pt", cwd=tmp_path,
                                         env=hub_env(hub, tmp_path))
        assert loaded.returncode == 0, loaded.stdout[-2000:] + loaded.stderr[-3000:]
        assert "ROUND TRIP OK" in loaded.stdout
        files_line = next(line for line in loaded.stdout.splitlines() if line.startswith("FILES "))
        assert set(files_line.split()[1:]) == MODEL_FILES | {"README.md"}
        assert all(r.token == FAKE_TOKEN for r in hub.requests if r.route in WRITE_ROUTES)
        assert hub.unhandled == [] and hub.server_errors == []


def test_example_publishes_its_loss(
    hub: FakeHub, model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = saved_folder(model, tmp_path / "model")
    example = Path(__file__).resolve().parents[1] / "examples" / "push_to_hub.py"
    text = tmp_path / "opening.txt"  # the book's text is 5,145 tokens: its first 2,000 characters keep this quick
    text.write_text(THE_VERDICT.read_text(encoding="utf-8")[:2000], encoding="utf-8")
    argv = [str(example), str(folder), "tiny-gpt", "--text", str(text)]
    monkeypatch.setattr(sys, "argv", argv)

    runpy.run_path(str(example), run_name="__main__")  # in-process, so that it talks to the loopback Hub

    (commit,) = hub.repos[REPO].commits
    output = capsys.readouterr().out
    assert f"published: {hub.url}/{REPO}/commit/{commit.oid}" in output
    loss = float(output.split(" loss ")[1].split()[0])
    card = card_of(hub)
    assert card.data.language == "en"
    training = card.text.split("## Training")[1].split("## Evaluation")[0]
    rows = dict([cell.strip() for cell in line.strip("|").split("|")] for line in training.splitlines()
                if line.startswith("| ") and line != "| | |")
    tokens = len(load_tokenizer()(text.read_text(encoding="utf-8"), verbose=False)["input_ids"])
    assert rows["training text"] == "opening.txt" and rows["tokens"] == f"{tokens:,}"
    assert abs(float(rows["loss"]) - loss) < 1e-3
    assert math.isclose(float(rows["perplexity"]), math.exp(float(rows["loss"])), rel_tol=1e-4)


def test_cli_reports_errors_in_one_line(
    hub: FakeHub, model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = saved_folder(model, tmp_path / "model")
    (tmp_path / "card.json").write_text('{"license": "mit", "datasets": ["karpathy/tiny_shakespeare"]}')
    tokenizer = load_tokenizer(model_max_length=64)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(tmp_path / "tokenizer")

    assert cli_main(["push", str(folder), REPO, "--private", "--card-data", str(tmp_path / "card.json"),
                     "--tokenizer", str(tmp_path / "tokenizer")]) == 0
    assert capsys.readouterr().out.startswith(f"published {folder} to {REPO}: {hub.url}/{REPO}/commit/")
    assert hub.repos[REPO].private and card_of(hub).data.datasets == ["karpathy/tiny_shakespeare"]
    assert hub.files(REPO)["tokenizer_config.json"] == (tmp_path / "tokenizer" / "tokenizer_config.json").read_bytes()

    for argv, error in [
        (["push", str(folder), REPO, "--card-data", "{not json"], "--card-data is neither a JSON object nor"),
        (["push", str(folder), REPO, "--card-data", "[1, 2]"], "--card-data must be a JSON object, got list"),
        (["push", str(tmp_path / "nope"), REPO], "no such model folder"),
        (["push", str(folder), REPO, "--tokenizer", str(tmp_path)], "is not a folder with tokenizer files"),
        (["push", str(folder), "a/b/c"], "invalid repo_id 'a/b/c'"),
        (["push", str(folder), REPO, "--create-pr", "--revision", "dev"], "cannot go with revision='dev'"),
        (["push", str(folder), REPO, "--token", WRONG_TOKEN], "answered 401 Unauthorized to POST"),
    ]:
        assert cli_main(argv) == 1, argv
        err = capsys.readouterr().err  # a progress bar, then one line
        assert err.splitlines()[-1].startswith("gpt-scratch push: error: ") and error in err.splitlines()[-1], err
        assert "Traceback" not in err and WRONG_TOKEN not in err, err
    monkeypatch.delenv("HF_TOKEN")
    assert cli_main(["push", str(folder), REPO]) == 1
    assert capsys.readouterr().err.startswith("gpt-scratch push: error: no Hugging Face token")


# --------------------------------------------------------------------------------------------- failures


def test_commit_500_reports_status_and_endpoint_and_publishes_nothing(
    hub: FakeHub, model, staging_root: Path
) -> None:
    before = hub.seed(REPO, {"README.md": b"---\nlicense: mit\n---\nold\n"})
    hub.fail_next("POST", f"/api/models/{REPO}/commit/", status=500)

    with pytest.raises(HubPushError) as error:
        push_to_hub(model, REPO)

    message = str(error.value)
    assert message.startswith(f"committing to {REPO}@main failed: the Hub answered 500 Internal Server Error to "
                              f"POST {hub.url}/api/models/{REPO}/commit/main: FakeHub: injected 500")
    assert message.endswith("; nothing was committed")
    assert (error.value.status_code, error.value.endpoint) == (500, f"{hub.url}/api/models/{REPO}/commit/main")
    assert [c.oid for c in hub.repos[REPO].commits] == [before]  # no partial commit
    assert len(hub.calls("POST", f"/api/models/{REPO}/commit/")) == 1  # not retried: it could commit twice
    assert FAKE_TOKEN not in full_error(error.value)
    assert list(staging_root.iterdir()) == []


def test_connection_refused_names_the_endpoint(start_hub, model, staging_root: Path) -> None:
    hub = start_hub()
    url = hub.url
    hub.stop()  # the port is closed now: connection refused

    with pytest.raises(HubPushError) as error:
        push_to_hub(model, REPO)

    assert str(error.value).startswith(
        f"validating the model card's metadata failed: could not reach the Hub (POST {url}/api/validate-yaml): ")
    assert "Connection refused" in str(error.value) and "nothing was committed" in str(error.value)
    assert (error.value.status_code, error.value.endpoint) == (None, f"{url}/api/validate-yaml")
    assert FAKE_TOKEN not in full_error(error.value)
    assert list(staging_root.iterdir()) == []


def test_missing_token_fails_before_any_request(start_hub, model, tmp_path: Path, staging_root: Path) -> None:
    hub = start_hub(token=None)  # no HF_TOKEN, no saved login under tmp_path

    with pytest.raises(HubPushError, match=r"^no Hugging Face token: pass token=\.\.\., set HF_TOKEN, or log in"):
        push_to_hub(model, REPO)

    assert hub.requests == [] and list(staging_root.iterdir()) == []
    (tmp_path / "hf_home").mkdir(exist_ok=True)
    Path(constants.HF_TOKEN_PATH).write_text(FAKE_TOKEN)  # `hf auth login` saves it there
    push_to_hub(model, REPO, token=True)  # True: the saved token, as in transformers' push_to_hub
    assert all(r.token == FAKE_TOKEN for r in hub.requests if r.route in WRITE_ROUTES)


def test_token_stays_out_of_logs_errors_and_output(
    start_hub, model, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    hub = start_hub(token=None)
    monkeypatch.setattr(constants, "HF_DEBUG", True)  # huggingface_hub then logs every request as a curl command
    loggers = {logging.getLogger(name): logging.getLogger(name).level
               for name in ("", "huggingface_hub", "transformers", "httpx2", "gpt_scratch")}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(caplog.handler)
    try:
        push_to_hub(model, REPO, token=FAKE_TOKEN)
        with pytest.raises(HubPushError, match="answered 401 Unauthorized to POST") as wrong:
            push_to_hub(model, REPO, token=WRONG_TOKEN)
        hub.fail_next("POST", f"/api/models/{REPO}/preupload/", status=403)
        with pytest.raises(HubPushError, match="answered 403 Forbidden to POST .*/preupload/main") as forbidden:
            push_to_hub(model, REPO, token=FAKE_TOKEN)
    finally:
        for logger, level in loggers.items():
            logger.removeHandler(caplog.handler)
            logger.setLevel(level)
    output = capfd.readouterr()
    assert "curl -X POST" in caplog.text and "<TOKEN>" in caplog.text  # the debug log did run
    for text in (caplog.text, output.out, output.err, full_error(wrong.value), full_error(forbidden.value)):
        assert FAKE_TOKEN not in text
        assert WRONG_TOKEN not in text
    assert "check that the token is valid" in str(wrong.value)


def test_card_rejected_by_the_hub_validator_creates_nothing(hub: FakeHub, model) -> None:
    hub.fail_next("POST", "/api/validate-yaml", status=400, message="license: not a known license id")

    with pytest.raises(ValueError, match="^the model card's metadata failed the Hub's validation: .*not a known"):
        push_to_hub(model, REPO, card_data={"license": "my-license"})

    assert routes(hub) == ["validate_yaml"] and hub.repos == {}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"repo_id": "a/b/c"}, ValueError, r"^invalid repo_id 'a/b/c': Repo id must be in the form"),
        ({"repo_id": 42}, TypeError, r"^repo_id must be a string"),
        ({"private": "yes"}, TypeError, r"^private must be True or False, got 'yes'"),
        ({"create_pr": True, "revision": "dev"}, ValueError, r"pull request against main; it cannot go with revision"),
        ({"commit_message": " "}, ValueError, r"^commit_message must be None or a non-empty string"),
        ({"token": 123}, TypeError, r"^token must be a string, True or None, got int"),
        ({"token": False}, ValueError, r"^token=False turns authentication off, but pushing needs a token"),
        ({"tokenizer": 3}, TypeError, r"^tokenizer must be a transformers tokenizer, a folder or None"),
        ({"model_or_folder": 3}, TypeError, r"^model_or_folder must be a GPTScratchForCausalLM"),
        ({"card_data": "license: mit"}, TypeError, r"^card_data must be a dict or a huggingface_hub.ModelCardData"),
        ({"card_data": {"base_model": "not a repo!"}}, ValueError,
         r"^card_data\['base_model'\] entry 'not a repo!' is not a Hub repo id"),
        ({"card_data": {"datasets": ["ok/name", 1]}}, ValueError,
         r"^card_data\['datasets'\] must be a string or a list of non-empty strings"),
        ({"card_data": {"training_results": [1, 2]}}, ValueError, r"^card_data\['training_results'\] must be a dict"),
        ({"card_data": {"eval_results": [{"task_type": "text-generation"}]}}, ValueError,
         r"^card_data\['eval_results'\]\[0\]: .*missing 4 required positional arguments"),
        ({"card_data": {"library_name": "timm"}}, ValueError, r"^card_data\['library_name'\] must be 'transformers'"),
        ({"card_data": {"license": ""}}, ValueError, r"^card_data\['license'\] must be a non-empty string"),
        ({"card_data": {"notes": object()}}, ValueError, r"^card_data\['notes'\] = <object .*cannot be written as"),
        ({"card_data": {"notes": FAKE_TOKEN}}, ValueError, r"^card_data contains the Hub token"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    hub: FakeHub, model, staging_root: Path, kwargs: dict, error: type, match: str
) -> None:
    arguments = {"model_or_folder": model, "repo_id": REPO, **kwargs}
    with pytest.raises(error, match=match) as raised:
        push_to_hub(arguments.pop("model_or_folder"), arguments.pop("repo_id"), **arguments)
    assert FAKE_TOKEN not in str(raised.value)
    assert hub.requests == [] and list(staging_root.iterdir()) == []


def _gpt2_folder(folder: Path) -> None:
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _truncated_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _weights_for_another_config(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "emb_dim": 64}))


def _missing_tensor(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    del weights["model.final_norm.scale"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _missing_shard(folder: Path) -> None:
    index = {"metadata": {}, "weight_map": {"model.tok_emb.weight": "model-00001-of-00002.safetensors"}}
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _small_vocabulary(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    ids = {"bos_token_id": 999, "eos_token_id": 999, "pad_token_id": 999}
    GPTScratchForCausalLM(tiny_config(vocab_size=1000, **ids)).save_pretrained(folder)  # no tokenizer: GPT-2's


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (lambda folder: folder.rename(folder.with_name("gone")), FileNotFoundError, r"^no such model folder: "),
        (_gpt2_folder, ValueError, r"config\.json has model_type 'gpt2', expected 'gpt_scratch'"),
        (_no_weights, FileNotFoundError, r"has neither model\.safetensors nor model\.safetensors\.index\.json"),
        (_truncated_weights, ValueError, r"model\.safetensors: truncated: tensor '[\w.]+' ends at byte"),
        (_weights_for_another_config, ValueError,
         r"model[/\\]model\.safetensors: tensor '[\w.]+' has shape \([\d, ]*32,?\), but the config needs "
         r"\([\d, ]*64,?\)"),
        (_missing_tensor, ValueError, r"lack 1 tensors the config needs, e\.g\. model\.final_norm\.scale"),
        (_missing_shard, FileNotFoundError, r"names shards that are not in .*: model-00001-of-00002\.safetensors"),
        (_small_vocabulary, ValueError,
         r"^the tokenizer has 50257 tokens but the model's vocab_size is 1000: ids past 999 would fail"),
    ],
)
def test_bad_folders_fail_before_any_request(
    hub: FakeHub, model, tmp_path: Path, staging_root: Path, damage, error: type, match: str
) -> None:
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    damage(folder)
    with pytest.raises(error, match=match):
        push_to_hub(folder, REPO)
    assert hub.requests == [] and list(staging_root.iterdir()) == []


def test_hf_hub_offline_fails_clearly(hub: FakeHub, model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubPushError, match="^HF_HUB_OFFLINE is set"):
        push_to_hub(model, REPO)
    assert hub.requests == []


def test_staging_leaves_the_source_folder_untouched(hub: FakeHub, model, tmp_path: Path) -> None:
    folder = saved_folder(model, tmp_path / "model")
    (folder / "config.json").write_text(json.dumps({
        k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k != "auto_map"}))
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}
    push_to_hub(folder, REPO)
    assert {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()} == before
    assert sorted(os.listdir(folder)) == sorted(before)
