"""The FakeHub against the real huggingface_hub client: uploads (inline and LFS), downloads, errors, guard.

Most tests drive the client in-process with an explicit `endpoint=`; one runs it in a subprocess through
`hub_env`, the way code that reads HF_ENDPOINT at import must be tested.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
from fake_hub import (
    FAKE_TOKEN,
    FakeHub,
    NetworkAccessBlocked,
    NetworkGuard,
    fake_hub_fixture,  # noqa: F401 (fixture)
    git_blob_oid,
    hub_env,
    isolate_hf_client,
    network_guard_fixture,  # noqa: F401 (fixture)
    patch_hub_endpoint,
)
from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "fake-user/tiny-gpt"
README = "---\nlicense: apache-2.0\ntags:\n- gpt2\n---\n# Tiny GPT\n"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model folder: a README with front matter, JSON, text, and binaries, one of them nested."""
    folder = tmp_path / "model"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    (folder / "config.json").write_text(json.dumps({"n_layer": 2, "n_embd": 64}))
    (folder / "merges.txt").write_text("h e\nl l\n")
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 16)  # 4 KiB
    (folder / "sub" / "deeper" / "extra.bin").write_bytes(os.urandom(2500))
    (folder / "sub" / "empty.txt").write_bytes(b"")
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_token_only_in_authorization(hub: FakeHub, token: str = FAKE_TOKEN) -> None:
    for req in hub.requests:
        assert token not in req.path and token not in json.dumps(req.query), req.path
        assert token.encode() not in req.body, req.path
        assert all(token not in value for name, value in req.headers.items() if name != "authorization")


def raw_request(
    hub: FakeHub, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with the stdlib client (no proxies, no huggingface_hub)."""
    conn = http.client.HTTPConnection(hub.url.removeprefix("http://"), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture(params=["xet-pipeline", "legacy"])
def upload_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both `upload_folder` code paths: the streamed pipeline (hf_xet installed, the default) and the
    single `create_commit` (HF_HUB_DISABLE_XET=1), which differ in retries and README validation."""
    if request.param == "legacy":
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    else:
        pytest.importorskip("hf_xet")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    return request.param


# --------------------------------------------------------------------------------------------- upload


def test_create_repo_twice_with_exist_ok(fake_hub: FakeHub) -> None:
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)

    first = api.create_repo(REPO, exist_ok=True)
    second = api.create_repo(REPO, exist_ok=True)
    bare = api.create_repo("bare-name")

    assert first == second == f"{fake_hub.url}/{REPO}"
    assert (first.repo_id, first.repo_type, bare.repo_id) == (REPO, "model", "fake-user/bare-name")
    assert [r.status for r in fake_hub.calls("POST", "/api/repos/create")] == [200, 409, 200]
    assert fake_hub.repos[REPO].commits == []
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_repo(REPO)
    assert fake_hub.unhandled == []


def test_upload_folder_inline_makes_exactly_one_commit(
    fake_hub: FakeHub, model_dir: Path, upload_path: str
) -> None:
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO, exist_ok=True)

    info = api.upload_folder(repo_id=REPO, folder_path=model_dir, commit_message="Upload tiny GPT")

    (commit,) = fake_hub.repos[REPO].commits
    assert fake_hub.files(REPO) == folder_files(model_dir)
    assert (info.oid, info.commit_message, commit.message) == (
        commit.oid,
        "Upload tiny GPT",
        "Upload tiny GPT",
    )
    assert info.commit_url == f"{fake_hub.url}/{REPO}/commit/{commit.oid}"
    assert {op["key"] for op in commit.operations} == {"file"}
    assert commit.lfs_paths == frozenset()
    # The pipeline validates the README once; the legacy path once more inside create_commit.
    validations = fake_hub.calls("POST", "/api/validate-yaml")
    assert len(validations) == (1 if upload_path == "xet-pipeline" else 2)
    assert validations[0].json() == {"content": README, "repoType": "model"}
    assert [r.route for r in fake_hub.requests] == ["create_repo"] + ["validate_yaml"] * len(validations) + [
        "preupload",
        "commit",
    ]
    assert all(r.token == FAKE_TOKEN for r in fake_hub.requests)
    assert_token_only_in_authorization(fake_hub)
    assert fake_hub.unhandled == []


def test_unchanged_files_are_not_committed_again(
    fake_hub: FakeHub, model_dir: Path, upload_path: str
) -> None:
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=model_dir)
    (model_dir / "config.json").write_text('{"n_layer": 3}')
    (model_dir / "merges.txt").unlink()

    second = api.upload_folder(repo_id=REPO, folder_path=model_dir, delete_patterns="*.txt")

    # preupload answers each existing file's oid (git sha1), so only the changed file is sent; the remote
    # merges.txt matches delete_patterns and is deleted (sub/empty.txt is re-added, unchanged: not sent).
    commits = fake_hub.repos[REPO].commits
    assert [c.oid for c in commits] == [first.oid, second.oid]
    assert [(op["key"], op["value"]["path"]) for op in commits[1].operations] == [
        ("deletedFile", "merges.txt"),
        ("file", "config.json"),
    ]
    assert fake_hub.files(REPO) == folder_files(model_dir)


# huggingface_hub's LFS PUT passes a file to httpx2 as data=, which httpx2 deprecates.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
def test_upload_folder_lfs_goes_through_batch_and_put(
    network_guard: NetworkGuard, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_hf_client(monkeypatch)
    # An "lfs" upload mode makes the client use Xet unless it is disabled; FakeHub speaks classic LFS only.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    expected = folder_files(model_dir)
    large = {path: data for path, data in expected.items() if len(data) >= 2048}
    assert sorted(large) == ["model.safetensors", "sub/deeper/extra.bin"]

    with FakeHub(lfs_threshold=2048) as hub:
        api = HfApi(endpoint=hub.url, token=FAKE_TOKEN)
        api.create_repo(REPO)
        api.upload_folder(repo_id=REPO, folder_path=model_dir)

        (commit,) = hub.repos[REPO].commits
        assert hub.files(REPO) == expected
        assert commit.lfs_paths == frozenset(large)
        lfs_lines = {op["value"]["path"]: op["value"] for op in commit.operations if op["key"] == "lfsFile"}
        assert lfs_lines == {
            path: {"path": path, "algo": "sha256", "oid": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for path, data in large.items()
        }
        inline = {op["value"]["path"] for op in commit.operations if op["key"] == "file"}
        assert inline == expected.keys() - large.keys()
        # The bytes travelled in the PUTs to the pre-signed URLs, which carry no Authorization header.
        puts = hub.calls("PUT", "/_fake_lfs/upload/")
        assert sorted(put.body for put in puts) == sorted(large.values())
        assert all("authorization" not in put.headers for put in puts)
        assert {r.route for r in hub.requests} == {
            "create_repo",
            "validate_yaml",
            "preupload",
            "lfs_batch",
            "lfs_put",
            "lfs_verify",
            "commit",
        }
        assert_token_only_in_authorization(hub)
        assert hub.unhandled == [] and hub.server_errors == []


# --------------------------------------------------------------------------------------------- download


def test_branches_and_pull_requests(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO)
    api.create_branch(REPO, branch="empty")  # before the first commit: a branch without commits
    first = api.create_commit(REPO, operations=[CommitOperationAdd("a.txt", b"a")], commit_message="first")
    api.create_branch(REPO, branch="dev", exist_ok=True)
    api.create_branch(REPO, branch="dev", exist_ok=True)  # exists: 409, swallowed
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_branch(REPO, branch="dev")

    on_dev = api.create_commit(REPO, operations=[CommitOperationAdd("b.txt", b"b")], commit_message="dev",
                               revision="dev")
    on_empty = api.create_commit(REPO, operations=[CommitOperationAdd("c.txt", b"c")], commit_message="e",
                                 revision="empty")
    pr = api.create_commit(REPO, operations=[CommitOperationAdd("a.txt", b"A")], commit_message="fix a",
                           create_pr=True)
    second_pr = api.create_commit(REPO, operations=[CommitOperationAdd("d.txt", b"d")], commit_message="add d",
                                  create_pr=True)

    repo = fake_hub.repos[REPO]
    assert repo.branches == {"main": first.oid, "empty": on_empty.oid, "dev": on_dev.oid,
                             "refs/pr/1": pr.oid, "refs/pr/2": second_pr.oid}
    assert fake_hub.files(REPO) == {"a.txt": b"a"}
    assert fake_hub.files(REPO, "dev") == {"a.txt": b"a", "b.txt": b"b"}
    assert fake_hub.files(REPO, "empty") == {"c.txt": b"c"} and repo.commit(on_empty.oid).parent is None
    assert fake_hub.files(REPO, "refs/pr/1") == {"a.txt": b"A"} and repo.commit(pr.oid).parent == first.oid
    assert (pr.pr_url, pr.pr_revision, pr.pr_num) == (f"{fake_hub.url}/{REPO}/discussions/1", "refs/pr/1", 1)
    assert second_pr.pr_revision == "refs/pr/2" and fake_hub.files(REPO, "refs/pr/2") == {"a.txt": b"a", "d.txt": b"d"}
    # A pull request's files download like a branch's.
    snapshot = snapshot_download(
        REPO, revision="refs/pr/1", endpoint=fake_hub.url, token=FAKE_TOKEN, cache_dir=tmp_path
    )
    assert folder_files(Path(snapshot)) == {"a.txt": b"A"}
    assert fake_hub.unhandled == []


def test_snapshot_and_file_download_round_trip(fake_hub: FakeHub, model_dir: Path, tmp_path: Path) -> None:
    expected = folder_files(model_dir)
    oid = fake_hub.seed(REPO, expected, lfs=["model.safetensors"])
    cache = tmp_path / "cache"

    snapshot = Path(snapshot_download(REPO, endpoint=fake_hub.url, token=FAKE_TOKEN, cache_dir=cache))
    single = hf_hub_download(
        REPO, "sub/deeper/extra.bin", endpoint=fake_hub.url, token=FAKE_TOKEN, cache_dir=tmp_path / "c2"
    )

    assert snapshot.name == oid
    assert folder_files(snapshot) == expected
    assert Path(single).read_bytes() == expected["sub/deeper/extra.bin"]
    # The cache names blobs by ETag: git sha1 for regular files, X-Linked-Etag (sha256) for LFS files.
    blobs = {p.name for p in (cache / "models--fake-user--tiny-gpt" / "blobs").iterdir()}
    assert hashlib.sha256(expected["model.safetensors"]).hexdigest() in blobs
    assert git_blob_oid(expected["config.json"]) in blobs
    assert {r.route for r in fake_hub.requests} == {"model_info", "tree", "resolve"}
    assert fake_hub.calls("GET", f"/api/models/{REPO}/tree/{oid}")[0].query["recursive"] == ["true"]
    assert fake_hub.unhandled == []


def test_download_errors_map_to_hub_exceptions(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.seed(REPO, {"config.json": b"{}"})
    kwargs = {"endpoint": fake_hub.url, "token": FAKE_TOKEN, "cache_dir": tmp_path}

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.bin", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("fake-user/nope", "config.json", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("fake-user/nope", **kwargs)


# --------------------------------------------------------------------------------------------- errors


def test_commit_500_raises_and_leaves_repo_unchanged(
    fake_hub: FakeHub, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The legacy path posts the commit once; the Xet pipeline would retry a 500 for ~23 s before raising.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    before = fake_hub.seed(REPO, {"config.json": b"{}"})
    fake_hub.fail_next("POST", f"/api/models/{REPO}/commit/", status=500)
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)

    with pytest.raises(HfHubHTTPError, match="500") as excinfo:
        api.upload_folder(repo_id=REPO, folder_path=model_dir)

    assert excinfo.value.response.status_code == 500
    assert "injected 500" in str(excinfo.value)
    assert [c.oid for c in fake_hub.repos[REPO].commits] == [before]
    assert fake_hub.files(REPO) == {"config.json": b"{}"}
    assert api.upload_folder(repo_id=REPO, folder_path=model_dir).oid == fake_hub.repos[REPO].commits[-1].oid


def test_pipeline_retries_a_transient_commit_500(
    fake_hub: FakeHub, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("hf_xet")  # a dependency of huggingface_hub on x86-64/arm64: the default path
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    fake_hub.fail_next("POST", f"/api/models/{REPO}/commit/", status=500)
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO)

    api.upload_folder(repo_id=REPO, folder_path=model_dir)  # retried after 1 s of backoff

    assert [r.status for r in fake_hub.calls("POST", f"/api/models/{REPO}/commit/")] == [500, 200]
    assert len(fake_hub.repos[REPO].commits) == 1
    assert fake_hub.files(REPO) == folder_files(model_dir)


def add_line(path: str, content: bytes = b"x") -> dict:
    return {
        "key": "file",
        "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"},
    }


@pytest.mark.parametrize(
    ("bad_line", "status"),
    [
        ({"key": "deletedFile", "value": {"path": "missing.txt"}}, 404),
        ({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "0" * 64, "size": 1}}, 400),
        (add_line("../escape"), 400),
        ({"key": "file", "value": {"path": "c.txt", "content": "not base64!", "encoding": "base64"}}, 400),
    ],
)
def test_rejected_commits_are_atomic(fake_hub: FakeHub, bad_line: dict, status: int) -> None:
    before = fake_hub.seed(REPO, {"a.txt": b"a"})

    def commit(*lines: dict) -> int:
        header = {"key": "header", "value": {"summary": "s", "description": ""}}
        body = b"".join(json.dumps(line).encode() + b"\n" for line in (header, *lines))
        return raw_request(fake_hub, "POST", f"/api/models/{REPO}/commit/main", body)[0]

    assert commit(add_line("b.txt", b"b"), bad_line) == status
    assert [c.oid for c in fake_hub.repos[REPO].commits] == [before]
    assert commit(add_line("b.txt", b"b")) == 200
    assert fake_hub.files(REPO) == {"a.txt": b"a", "b.txt": b"b"}


def test_token_is_required_for_writes(
    network_guard: NetworkGuard, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_hf_client(monkeypatch)
    with FakeHub(require_token=FAKE_TOKEN) as hub:
        anonymous = HfApi(endpoint=hub.url, token=False)
        wrong = HfApi(endpoint=hub.url, token="hf_wrong")

        with pytest.raises(HfHubHTTPError, match="401") as missing:
            anonymous.create_repo(REPO)
        assert missing.value.response.status_code == 401 and REPO not in hub.repos
        with pytest.raises(HfHubHTTPError, match="Invalid credentials in Authorization header"):
            wrong.create_repo(REPO, exist_ok=True)

        HfApi(endpoint=hub.url, token=FAKE_TOKEN).create_repo(REPO)
        with pytest.raises(HfHubHTTPError, match="401"):
            wrong.upload_folder(repo_id=REPO, folder_path=model_dir)
        (model_dir / "README.md").unlink()  # so that the first write is the preupload
        with pytest.raises(HfHubHTTPError, match="401"):
            anonymous.upload_folder(repo_id=REPO, folder_path=model_dir)
        assert hub.repos[REPO].commits == []
        # The client's fallback: on a 401, create_repo(exist_ok=True) succeeds if the repo is readable. It
        # builds the RepoUrl against constants.ENDPOINT, so it only works once that points at the hub.
        patch_hub_endpoint(monkeypatch, hub, tmp_path, token=None)
        assert huggingface_hub.create_repo(REPO, exist_ok=True).repo_id == REPO
        assert hub.requests[-2].status == 401 and hub.requests[-1].route == "model_info"
        assert hub.unhandled == [] and hub.server_errors == []


@pytest.mark.parametrize(
    ("readme", "problem"),
    [
        ("---\n- a\n- b\n---\ntext\n", "must be a YAML mapping"),
        ("---\nkey: [unclosed\n---\n", "Invalid YAML"),
    ],
)
def test_invalid_readme_metadata_stops_the_upload(
    fake_hub: FakeHub, model_dir: Path, readme: str, problem: str
) -> None:
    (model_dir / "README.md").write_text(readme)
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO)

    with pytest.raises(ValueError, match=f"Invalid metadata in README.md.\n- .*{problem}"):
        api.upload_folder(repo_id=REPO, folder_path=model_dir)

    assert fake_hub.calls("POST", "/api/validate-yaml")[0].status == 400
    assert fake_hub.calls("POST", f"/api/models/{REPO}/") == []


def test_readme_without_metadata_warns(fake_hub: FakeHub, model_dir: Path) -> None:
    (model_dir / "README.md").write_text("# no front matter\n")
    api = HfApi(endpoint=fake_hub.url, token=FAKE_TOKEN)
    api.create_repo(REPO)

    with pytest.warns(UserWarning, match="Empty or missing yaml metadata"):
        api.upload_folder(repo_id=REPO, folder_path=model_dir)
    assert len(fake_hub.repos[REPO].commits) == 1


def test_unknown_endpoints_answer_404_and_are_recorded(fake_hub: FakeHub) -> None:
    status, headers, body = raw_request(fake_hub, "GET", "/api/spaces/someone/space")

    assert status == 404 and "no endpoint" in json.loads(body)["error"]
    assert [(r.method, r.path) for r in fake_hub.unhandled] == [("GET", "/api/spaces/someone/space")]


def test_lfs_protocol_details(fake_hub: FakeHub) -> None:
    """Raw protocol: signed chunked PUT, verify, lfsFile commit, LFS headers on resolve, ranges."""
    data = os.urandom(3000)
    oid = hashlib.sha256(data).hexdigest()
    fake_hub.seed(REPO, {"a.txt": b"a"})
    batch = {"operation": "upload", "objects": [{"oid": oid, "size": len(data)}], "hash_algo": "sha256"}
    status, _, body = raw_request(
        fake_hub, "POST", f"/{REPO}.git/info/lfs/objects/batch", json.dumps(batch).encode()
    )
    actions = json.loads(body)["objects"][0]["actions"]
    upload = actions["upload"]["href"].removeprefix(fake_hub.url)

    assert raw_request(fake_hub, "PUT", upload.replace("sig=", "sig=x"), data)[0] == 403
    assert raw_request(fake_hub, "PUT", upload, data[:-1])[0] == 400
    # Chunked transfer encoding, which httpx uses for bodies of unknown length.
    conn = http.client.HTTPConnection(fake_hub.url.removeprefix("http://"), timeout=10)
    conn.request("PUT", upload, body=iter([data[:1000], data[1000:]]), encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    verify = json.dumps({"oid": oid, "size": len(data)}).encode()
    assert (
        raw_request(fake_hub, "POST", actions["verify"]["href"].removeprefix(fake_hub.url), verify)[0] == 200
    )
    line = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": len(data)}}
    header = {"key": "header", "value": {"summary": "add w.bin"}}
    commit_body = f"{json.dumps(header)}\n{json.dumps(line)}\n".encode()
    assert raw_request(fake_hub, "POST", f"/api/models/{REPO}/commit/main", commit_body)[0] == 200

    status, headers, _ = raw_request(fake_hub, "HEAD", f"/{REPO}/resolve/main/w.bin")
    assert (status, headers["X-Linked-Etag"], headers["X-Linked-Size"]) == (200, f'"{oid}"', "3000")
    assert (
        headers["Content-Length"] == "3000"
        and headers["X-Repo-Commit"] == fake_hub.repos[REPO].commits[-1].oid
    )
    status, headers, body = raw_request(
        fake_hub, "GET", f"/{REPO}/resolve/main/w.bin", headers={"Range": "bytes=10-"}
    )
    assert (status, body, headers["Content-Range"]) == (206, data[10:], "bytes 10-2999/3000")
    # Already stored: the next batch asks for no upload at all.
    _, _, body = raw_request(
        fake_hub, "POST", f"/{REPO}.git/info/lfs/objects/batch", json.dumps(batch).encode()
    )
    assert "actions" not in json.loads(body)["objects"][0]
    status, headers, _ = raw_request(fake_hub, "HEAD", f"/{REPO}/resolve/main/nope.bin")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")


# --------------------------------------------------------------------------------------------- wiring


def test_network_guard_refuses_non_loopback_hosts(network_guard: NetworkGuard, fake_hub: FakeHub) -> None:
    with pytest.raises(NetworkAccessBlocked):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with pytest.raises(NetworkAccessBlocked):
        socket.getaddrinfo("example.com", 80)
    with socket.socket() as sock, pytest.raises(NetworkAccessBlocked):
        sock.connect(("203.0.113.7", 80))  # TEST-NET-3, never routed
    with pytest.raises(NetworkAccessBlocked):
        HfApi(endpoint="https://huggingface.co", token=False).model_info("gpt2")
    assert len(network_guard.blocked) == 4
    network_guard.blocked.clear()  # expected: the fixture fails tests that leave attempts behind

    raw_request(fake_hub, "GET", "/api/whoami-v2")  # loopback still works


def test_patch_hub_endpoint_redirects_module_level_functions(
    network_guard: NetworkGuard, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub(require_token=FAKE_TOKEN) as hub:
        patch_hub_endpoint(monkeypatch, hub, tmp_path)

        huggingface_hub.create_repo(REPO)
        huggingface_hub.upload_folder(repo_id=REPO, folder_path=model_dir)
        path = huggingface_hub.hf_hub_download(REPO, "config.json")  # cache under tmp_path, token from env

        assert Path(path).read_bytes() == (model_dir / "config.json").read_bytes()
        assert Path(path).is_relative_to(tmp_path)
        assert hub.unhandled == [] and all(r.token == FAKE_TOKEN for r in hub.requests)


def test_subprocess_client_with_hub_env(fake_hub: FakeHub, model_dir: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import socket, sys
        from huggingface_hub import HfApi, constants, snapshot_download
        from fake_hub import NetworkAccessBlocked

        assert constants.ENDPOINT == sys.argv[1], constants.ENDPOINT
        api = HfApi()  # everything from the environment
        api.create_repo(sys.argv[2], exist_ok=True)
        api.upload_folder(repo_id=sys.argv[2], folder_path=sys.argv[3])
        print(snapshot_download(sys.argv[2]))
        try:
            socket.create_connection(("huggingface.co", 443), timeout=1)
        except NetworkAccessBlocked:
            print("guarded")
        """
    )
    env = hub_env(fake_hub, tmp_path)

    result = subprocess.run(
        [sys.executable, "-c", script, fake_hub.url, REPO, str(model_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    snapshot, guarded = result.stdout.split()
    assert guarded == "guarded"
    assert Path(snapshot).is_relative_to(tmp_path / "hf_home")
    assert folder_files(Path(snapshot)) == folder_files(model_dir)
    assert len(fake_hub.repos[REPO].commits) == 1
    assert all(r.token == FAKE_TOKEN for r in fake_hub.requests)
    assert fake_hub.unhandled == []
