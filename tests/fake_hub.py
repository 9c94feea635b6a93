"""An in-memory Hugging Face Hub served on loopback, for offline tests of the real `huggingface_hub` client.

`FakeHub` implements the part of the Hub HTTP API that `HfApi.create_repo`, `HfApi.create_branch`,
`HfApi.upload_folder` and `HfApi.create_commit` (inline and classic LFS uploads, `create_pr=True`), `hf_hub_download`
and `snapshot_download` use, as read from huggingface_hub 2.4. Every request is recorded so that tests can check what
the client sent; requests to endpoints it does not serve are answered 404 and recorded too (`FakeHub.unhandled`), so
a test can assert that nothing unexpected was hit.

Two ways to point the client at it:

- in-process: pass `endpoint=hub.url` (and `token=`, `cache_dir=`) explicitly to `HfApi`, `hf_hub_download`
  and `snapshot_download`; or call `patch_hub_endpoint` for code that uses the module-level functions;
- in a subprocess: run it with `hub_env(hub, tmp_path)`, which sets `HF_ENDPOINT` before huggingface_hub is
  imported and installs the network guard there too.

Not served: Xet storage (an "lfs" upload mode needs `HF_HUB_DISABLE_XET=1` on the client), multipart LFS, the
discussions API (so `upload_folder(create_pr=True)` with Xet enabled, which opens its pull request through it),
dataset and Space repos. A pull request is a `refs/pr/N` branch made by a `create_pr` commit.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

FAKE_TOKEN = "hf_fakeHubToken0123456789abcdefghijkl"
"""A token-shaped string for tests; it is never valid anywhere but on a FakeHub."""

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# Same front-matter rule as huggingface_hub.repocard.REGEX_YAML_BLOCK.
_YAML_BLOCK = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")
_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def git_blob_oid(data: bytes) -> str:
    """Git's sha1 of a blob (`git hash-object`): the oid the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file that stands in the git tree for an LFS file."""
    return _LFS_POINTER.format(oid=hashlib.sha256(data).hexdigest(), size=len(data)).encode()


# --------------------------------------------------------------------------------------------- state


@dataclass
class RecordedRequest:
    """One request as it reached the server; `route` is None when no endpoint matched it."""

    method: str
    path: str  # raw (still percent-encoded) path, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    route: str | None = None
    status: int = 0  # status answered, set once the answer is built

    @property
    def token(self) -> str | None:
        """The bearer token of the Authorization header, if any."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" and value else None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def ndjson(self) -> list[dict[str, Any]]:
        """The body parsed as newline-delimited JSON (the commit payload)."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


@dataclass
class Commit:
    """A commit: the full snapshot of the repo after it, and the operations that produced it."""

    oid: str
    parent: str | None
    message: str
    description: str
    files: dict[str, bytes]
    lfs_paths: frozenset[str]
    operations: list[dict[str, Any]]  # the NDJSON lines after the header, as received
    date: datetime


@dataclass
class Repo:
    """A model repo; a new repo has no commit at all (the real Hub adds a `.gitattributes` one)."""

    repo_id: str
    private: bool = False
    commits: list[Commit] = field(default_factory=list)
    # branch name -> commit oid; None for a branch made before the repo's first commit
    branches: dict[str, str | None] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def commit(self, oid: str) -> Commit:
        """The commit with this full oid."""
        return next(c for c in self.commits if c.oid == oid)

    def head(self, branch: str = "main") -> Commit | None:
        """The commit a branch points to, None for a branch without commits."""
        oid = self.branches.get(branch)
        return self.commit(oid) if oid is not None else None


@dataclass
class _Failure:
    method: str
    path_prefix: str
    status: int
    times: int
    message: str


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _HubError(Exception):
    """Raised inside handlers to answer an error; the JSON body and X-Error-* headers mimic the Hub."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.reply = _json_reply(status, {"error": message}, headers)
        # huggingface_hub picks the exception class from X-Error-Code and the message from X-Error-Message;
        # headers are Latin-1 on the wire, so escape anything else (e.g. a non-ASCII file name).
        self.reply.headers["X-Error-Message"] = message.encode("ascii", "backslashreplace").decode()
        if code is not None:
            self.reply.headers["X-Error-Code"] = code


def _json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


def _iso(date: datetime) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------------------------- server


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>[^/]+)"  # the client percent-encodes revisions, so a branch like refs/pr/1 has no slash
# (method, raw path pattern, handler name, access): "write" needs the token when require_token is set,
# "signed" is the pre-signed LFS upload URL (no Authorization, like S3), "read" is public.
_ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    (method, re.compile(pattern), handler, access)
    for method, pattern, handler, access in [
        ("POST", r"/api/repos/create", "_create_repo", "write"),
        ("GET", r"/api/whoami-v2", "_whoami", "write"),
        ("GET", r"/api/agent-harnesses", "_agent_harnesses", "read"),
        ("POST", r"/api/validate-yaml", "_validate_yaml", "read"),
        ("GET", rf"/api/models/{_REPO}", "_model_info", "read"),
        ("GET", rf"/api/models/{_REPO}/revision/{_REV}", "_model_info", "read"),
        ("GET", rf"/api/models/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", "_tree", "read"),
        ("POST", rf"/api/models/{_REPO}/paths-info/{_REV}", "_paths_info", "read"),
        ("POST", rf"/api/models/{_REPO}/preupload/{_REV}", "_preupload", "write"),
        ("POST", rf"/api/models/{_REPO}/commit/{_REV}", "_commit", "write"),
        ("POST", rf"/api/models/{_REPO}/branch/{_REV}", "_create_branch", "write"),
        ("POST", rf"/{_REPO}\.git/info/lfs/objects/batch", "_lfs_batch", "write"),
        ("POST", rf"/{_REPO}\.git/info/lfs/objects/verify", "_lfs_verify", "write"),
        ("PUT", r"/_fake_lfs/upload/(?P<oid>[0-9a-f]{64})", "_lfs_put", "signed"),
        ("HEAD", rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", "_resolve", "read"),
        ("GET", rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", "_resolve", "read"),
    ]
]


class FakeHub:
    """In-memory Hub on 127.0.0.1 (ephemeral port); `start()`/`stop()` or use it as a context manager.

    `lfs_threshold=None` makes every file "regular" (sent inline in the commit); an int makes files of at
    least that many bytes "lfs" (the client then needs `HF_HUB_DISABLE_XET=1`). With `require_token`, write
    endpoints answer 401 unless `Authorization: Bearer <require_token>` is sent, and any other token is
    refused everywhere. Repos created without a namespace go under `username`.
    """

    def __init__(
        self,
        *,
        lfs_threshold: int | None = None,
        require_token: str | None = None,
        username: str = "fake-user",
    ) -> None:
        if lfs_threshold is not None and lfs_threshold < 1:
            raise ValueError(f"lfs_threshold must be None or >= 1, got {lfs_threshold}")
        self.lfs_threshold = lfs_threshold
        self.require_token = require_token
        self.username = username
        self.requests: list[RecordedRequest] = []
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content, as uploaded through the LFS PUT
        self.server_errors: list[str] = []  # tracebacks of handler bugs (answered 500)
        self._lfs_signatures: dict[str, str] = {}  # sha256 -> secret of its pre-signed upload URL
        self._failures: list[_Failure] = []
        self._hangs: list[_Failure] = []
        self._release = threading.Event()  # set by stop(): held requests are closed unanswered
        # One lock for all state: handlers run on server threads while tests read from the main thread.
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """The endpoint, e.g. "http://127.0.0.1:41234" (HF_ENDPOINT / `endpoint=`)."""
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        """Bind an ephemeral loopback port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeHub is already started")
        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self  # type: ignore[attr-defined]
        # A short poll interval: stop() waits for it (the default 0.5 s adds up over a test suite).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------- test API

    def fail_next(
        self, method: str, path_prefix: str, *, status: int = 500, times: int = 1, message: str | None = None
    ) -> None:
        """Answer the next `times` requests with `method` whose path starts with `path_prefix` with `status`.

        The client retries 429/5xx with backoff (1, 2, 4, 8, 8 s) on preupload, LFS and, in the Xet-enabled
        `upload_folder` pipeline, on commit: `times=1` tests the retry, a persistent failure costs ~23 s.
        """
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        message = message or f"FakeHub: injected {status} for {method} {path_prefix}"
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_prefix, status, times, message))

    def hang_next(self, method: str, path_prefix: str, *, times: int = 1) -> None:
        """Accept the next `times` requests with `method` whose path starts with `path_prefix`, and never answer them:
        a Hub that holds the connection open. `stop()` closes them unanswered; `held` lists them."""
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            self._hangs.append(_Failure(method.upper(), path_prefix, 0, times, "held"))

    @property
    def held(self) -> list[RecordedRequest]:
        """Requests accepted and never answered (`hang_next`)."""
        with self._lock:
            return [r for r in self.requests if r.status == -1]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> content at a branch or commit oid; {} for a branch without commits."""
        with self._lock:
            repo = self.repos[repo_id]
            if revision in repo.branches or revision == "main":
                head = repo.head(revision)
            else:
                head = next((c for c in repo.commits if c.oid == revision), None)
                if head is None:
                    raise KeyError(f"{repo_id} has no branch or commit {revision!r}")
            return dict(head.files) if head is not None else {}

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and raw path prefix."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and r.path.startswith(path_prefix)
            ]

    @property
    def unhandled(self) -> list[RecordedRequest]:
        """Requests no endpoint matched (answered 404); held ones (`hang_next`) are not among them."""
        with self._lock:
            return [r for r in self.requests if r.route is None and r.status != -1]

    def seed(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        lfs: Iterable[str] = (),
        message: str = "seed",
        private: bool = False,
    ) -> str:
        """Create the repo if needed and commit `files` to main server-side (no request); returns the oid."""
        lfs = set(lfs)
        if not lfs <= files.keys():
            raise ValueError(f"lfs paths {sorted(lfs - files.keys())} are not in files")
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(repo_id, private=private))
            head = repo.head()
            snapshot = dict(head.files) if head else {}
            lfs_paths = set(head.lfs_paths) if head else set()
            for path, data in files.items():
                snapshot[path] = data
                lfs_paths.discard(path)
                if path in lfs:
                    lfs_paths.add(path)
                    self.lfs_objects[hashlib.sha256(data).hexdigest()] = data
            return self._append_commit(repo, "main", message, "", snapshot, lfs_paths, []).oid

    # ----------------------------------------------------------------------------------- dispatch

    def _handle(self, req: RecordedRequest) -> _Reply | None:
        """Answer one request (None: held unanswered until stop()); runs on a server thread."""
        with self._lock:
            self.requests.append(req)
            hang = next((h for h in self._hangs if h.method == req.method and req.path.startswith(h.path_prefix)), None)
            if hang is not None:
                hang.times -= 1
                if hang.times == 0:
                    self._hangs.remove(hang)
                req.status = -1
        if hang is not None:
            self._release.wait()
            return None
        with self._lock:
            failure = next(
                (f for f in self._failures if f.method == req.method and req.path.startswith(f.path_prefix)),
                None,
            )
            if failure is not None:
                failure.times -= 1
                if failure.times == 0:
                    self._failures.remove(failure)
        for method, pattern, handler, access in _ROUTES:
            match = pattern.fullmatch(req.path)
            if method == req.method and match:
                req.route = handler.lstrip("_")
                break
        else:
            match = handler = access = None
        try:
            if failure is not None:
                raise _HubError(failure.status, failure.message)
            if handler is None or match is None:
                raise _HubError(404, f"FakeHub: no endpoint for {req.method} {req.path}")
            self._check_auth(req, access)
            params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            with self._lock:  # handlers run one at a time: a commit is atomic against everything else
                return getattr(self, handler)(req, **params)
        except _HubError as error:
            return error.reply
        except Exception:
            self.server_errors.append(traceback.format_exc())
            return _HubError(500, "FakeHub internal error (see FakeHub.server_errors)").reply

    def _check_auth(self, req: RecordedRequest, access: str | None) -> None:
        if self.require_token is None or access == "signed":
            return
        if req.token is not None and req.token != self.require_token:
            # This exact X-Error-Message keeps the client from re-labelling the 401 as RepositoryNotFound.
            raise _HubError(401, "Invalid credentials in Authorization header")
        if access == "write" and req.token is None:
            raise _HubError(401, "FakeHub: this endpoint needs a token (Authorization: Bearer ...)")

    def _authorized(self, req: RecordedRequest) -> bool:
        return self.require_token is None or req.token == self.require_token

    def _repo(self, req: RecordedRequest, repo_id: str) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized(req)):
            # The Hub answers the same for "missing" and "private and not yours".
            raise _HubError(404, f"Repository {repo_id} not found", code="RepoNotFound")
        return repo

    def _revision(self, repo: Repo, rev: str) -> Commit | None:
        """Branch or (abbreviated) commit oid -> commit; None for main before the first commit."""
        if rev in repo.branches:
            return repo.head(rev)
        if rev == "main":
            return None
        if re.fullmatch(r"[0-9a-f]{7,40}", rev):
            found = [c for c in repo.commits if c.oid.startswith(rev)]
            if len(found) == 1:
                return found[0]
        raise _HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")

    def _branch(self, repo: Repo, rev: str) -> str:
        """Only branches take commits: main always, other branches once they exist."""
        if rev != "main" and rev not in repo.branches:
            raise _HubError(
                404,
                f"Invalid rev id: {rev} (FakeHub commits to existing branches only)",
                code="RevisionNotFound",
            )
        return rev

    @staticmethod
    def _body_json(req: RecordedRequest) -> Any:
        try:
            return json.loads(req.body or b"null")
        except ValueError as error:
            raise _HubError(400, f"FakeHub: body is not JSON: {error}") from error

    # ----------------------------------------------------------------------------------- account, repos

    def _whoami(self, req: RecordedRequest) -> _Reply:
        return _json_reply(
            200,
            {
                "type": "user",
                "id": "0" * 24,
                "name": self.username,
                "fullname": self.username,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "fake-hub", "role": "write"}},
            },
        )

    def _agent_harnesses(self, req: RecordedRequest) -> _Reply:
        # Unless telemetry is off, the first user-agent huggingface_hub builds fetches this registry from
        # constants.ENDPOINT (once a day, cached in HF_HOME); an empty one means "no AI agent detected".
        return _json_reply(200, {"standardEnvVars": [], "harnesses": {}})

    def _create_repo(self, req: RecordedRequest) -> _Reply:
        body = self._body_json(req) or {}
        name, namespace = body.get("name"), body.get("organization") or self.username
        if body.get("type") not in (None, "model"):
            raise _HubError(400, f"FakeHub serves model repos only, got type={body.get('type')!r}")
        if not isinstance(name, str) or not _REPO_NAME.fullmatch(name) or not _REPO_NAME.fullmatch(namespace):
            raise _HubError(400, f"FakeHub: invalid repo name {namespace}/{name}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            # create_repo(exist_ok=True) swallows the 409 and then reads "url" from this very body.
            return _json_reply(409, {"error": "You already created this model repo", "url": url})
        private = bool(body.get("private")) or body.get("visibility") == "private"
        self.repos[repo_id] = Repo(repo_id, private=private)
        return _json_reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, req: RecordedRequest) -> _Reply:
        # The client parses this body as JSON before checking the status, so every answer must be JSON.
        import yaml  # a dependency of huggingface_hub itself

        content = (self._body_json(req) or {}).get("content")
        if not isinstance(content, str):
            return _json_reply(400, {"errors": [{"message": "FakeHub: 'content' must be a string"}]})
        block = _YAML_BLOCK.match(content)
        if block is None:
            return _json_reply(
                200, {"errors": [], "warnings": [{"message": "Empty or missing yaml metadata in repo card"}]}
            )
        try:
            metadata = yaml.safe_load(block.group(2))
        except yaml.YAMLError as error:
            message = f"Invalid YAML in README.md metadata: {error}".replace("\n", " ")
            return _json_reply(400, {"errors": [{"message": message}]})
        if metadata is not None and not isinstance(metadata, dict):
            message = f"README.md metadata must be a YAML mapping, got {type(metadata).__name__}"
            return _json_reply(400, {"errors": [{"message": message}]})
        return _json_reply(200, {"errors": [], "warnings": []})

    # ----------------------------------------------------------------------------------- read API

    def _file_info(self, commit: Commit, path: str) -> dict[str, Any]:
        data = commit.files[path]
        if path not in commit.lfs_paths:
            return {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}
        pointer = lfs_pointer(data)
        lfs = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_blob_oid(pointer), "size": len(data), "path": path, "lfs": lfs}

    @staticmethod
    def _folders(commit: Commit | None) -> set[str]:
        files = commit.files if commit is not None else {}
        return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}

    def _folder_info(self, commit: Commit, path: str) -> dict[str, Any]:
        listing = "\n".join(sorted(p for p in commit.files if p.startswith(path + "/")))
        return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "path": path}

    def _model_info(self, req: RecordedRequest, repo: str, rev: str = "main") -> _Reply:
        repository = self._repo(req, repo)
        commit = self._revision(repository, rev)
        blobs = req.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for path in sorted(commit.files) if commit else []:
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                info = self._file_info(commit, path)
                sibling.update(size=info["size"], blobId=info["oid"])
                if "lfs" in info:
                    lfs = info["lfs"]
                    sibling["lfs"] = {
                        "size": lfs["size"],
                        "sha256": lfs["oid"],
                        "pointerSize": lfs["pointerSize"],
                    }
            siblings.append(sibling)
        return _json_reply(
            200,
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "modelId": repo,
                "author": repo.split("/")[0],
                "sha": commit.oid if commit else None,
                "lastModified": _iso(commit.date if commit else repository.created_at),
                "createdAt": _iso(repository.created_at),
                "private": repository.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            },
        )

    def _tree(self, req: RecordedRequest, repo: str, rev: str, path: str = "") -> _Reply:
        commit = self._revision(self._repo(req, repo), rev)
        path = path.strip("/")
        if commit is None:  # main before the first commit: an empty root (listed by delete_patterns)
            if path:
                raise _HubError(404, f"{path} does not exist on {rev}", code="EntryNotFound")
            return _json_reply(200, [])
        recursive = req.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        folders = self._folders(commit)
        if path and path not in folders:
            raise _HubError(404, f"{path} does not exist on {rev}", code="EntryNotFound")
        prefix = f"{path}/" if path else ""

        def listed(entry: str) -> bool:
            return entry.startswith(prefix) and (recursive or "/" not in entry[len(prefix) :])

        entries = [self._folder_info(commit, p) for p in sorted(folders) if listed(p)]
        entries += [self._file_info(commit, p) for p in sorted(commit.files) if listed(p)]
        return _json_reply(200, entries)  # one page: no Link header, so the client stops here

    def _paths_info(self, req: RecordedRequest, repo: str, rev: str) -> _Reply:
        commit = self._revision(self._repo(req, repo), rev)
        if req.headers.get("content-type", "").startswith("application/json"):
            paths = (self._body_json(req) or {}).get("paths", [])
        else:  # the client sends a form: paths=a&paths=b&expand=false
            paths = parse_qs(req.body.decode()).get("paths", [])
        folders = self._folders(commit)
        entries = []
        for path in paths:
            path = path.strip("/")
            if commit is not None and path in commit.files:
                entries.append(self._file_info(commit, path))
            elif commit is not None and path in folders:
                entries.append(self._folder_info(commit, path))
        return _json_reply(200, entries)

    def _resolve(self, req: RecordedRequest, repo: str, rev: str, path: str) -> _Reply:
        commit = self._revision(self._repo(req, repo), rev)
        if commit is None or path not in commit.files:
            # X-Repo-Commit lets hf_hub_download cache the file's absence under that commit.
            headers = {"X-Repo-Commit": commit.oid} if commit is not None else {}
            raise _HubError(404, f"Entry not found: {path}", code="EntryNotFound", headers=headers)
        data = commit.files[path]
        info = self._file_info(commit, path)
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{info["oid"]}"',
        }
        if "lfs" in info:
            # For LFS files the client keys its cache on X-Linked-Etag (the sha256) and its size check on
            # X-Linked-Size; the real Hub sends them on the redirect to the CDN, this fake serves in place.
            headers.update(
                {
                    "ETag": f'"{info["lfs"]["oid"]}"',
                    "X-Linked-Etag": f'"{info["lfs"]["oid"]}"',
                    "X-Linked-Size": str(len(data)),
                }
            )
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", req.headers.get("range", "").strip())
        if req.method == "GET" and byte_range:
            start = int(byte_range.group(1))
            end = min(int(byte_range.group(2) or len(data) - 1), len(data) - 1)
            if start > end:
                raise _HubError(416, f"Range {start}-{end} not satisfiable for {len(data)} bytes")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return _Reply(206, data[start : end + 1], headers)
        return _Reply(200, data, headers)

    # ----------------------------------------------------------------------------------- write API

    def _upload_mode(self, size: int) -> str:
        return "lfs" if self.lfs_threshold is not None and size >= self.lfs_threshold else "regular"

    def _preupload(self, req: RecordedRequest, repo: str, rev: str) -> _Reply:
        repository = self._repo(req, repo)
        head = repository.head(self._branch(repository, rev))
        files = (self._body_json(req) or {}).get("files")
        if not isinstance(files, list):
            raise _HubError(400, "FakeHub: preupload body needs a 'files' list")
        answers = []
        for entry in files:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise _HubError(400, f"FakeHub: bad preupload entry {entry!r}")
            size = entry.get("size")
            if not isinstance(size, int) or size < 0:
                raise _HubError(400, f"FakeHub: bad size for {entry['path']}: {size!r}")
            # The client skips files whose remote oid equals its local one: sha256 for LFS, else git sha1.
            oid = None
            if head is not None and entry["path"] in head.files:
                data = head.files[entry["path"]]
                lfs = entry["path"] in head.lfs_paths
                oid = hashlib.sha256(data).hexdigest() if lfs else git_blob_oid(data)
            answers.append(
                {
                    "path": entry["path"],
                    "uploadMode": self._upload_mode(size),
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        return _json_reply(200, {"files": answers, "commitOid": head.oid if head else None})

    def _lfs_batch(self, req: RecordedRequest, repo: str) -> _Reply:
        self._repo(req, repo)
        body = self._body_json(req) or {}
        if body.get("operation") != "upload":
            raise _HubError(
                400, f"FakeHub: only LFS upload batches are served, got {body.get('operation')!r}"
            )
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not _SHA256.fullmatch(oid) or not isinstance(size, int):
                raise _HubError(400, f"FakeHub: bad LFS object {obj!r}")
            if oid in self.lfs_objects and len(self.lfs_objects[oid]) == size:
                objects.append({"oid": oid, "size": size})  # no "actions": already stored, nothing to send
                continue
            # A pre-signed URL, as the Hub hands out for S3: the PUT carries no Authorization header.
            signature = self._lfs_signatures.setdefault(oid, secrets.token_hex(8))
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {"href": f"{self.url}/_fake_lfs/upload/{oid}?size={size}&sig={signature}"},
                        "verify": {"href": f"{self.url}/{repo}.git/info/lfs/objects/verify"},
                    },
                }
            )
        reply = _json_reply(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
        reply.headers["Content-Type"] = "application/vnd.git-lfs+json"
        return reply

    def _lfs_put(self, req: RecordedRequest, oid: str) -> _Reply:
        expected = self._lfs_signatures.get(oid)
        if expected is None or req.query.get("sig", [""])[0] != expected:
            raise _HubError(403, "FakeHub: bad or missing signature on the LFS upload URL")
        size = int(req.query.get("size", ["-1"])[0])
        if len(req.body) != size or hashlib.sha256(req.body).hexdigest() != oid:
            raise _HubError(400, f"FakeHub: LFS upload does not match oid {oid} / size {size}")
        self.lfs_objects[oid] = req.body
        return _Reply(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})

    def _lfs_verify(self, req: RecordedRequest, repo: str) -> _Reply:
        self._repo(req, repo)
        body = self._body_json(req) or {}
        stored = self.lfs_objects.get(body.get("oid", ""))
        if stored is None or len(stored) != body.get("size"):
            raise _HubError(404, f"FakeHub: LFS object {body.get('oid')} was not uploaded")
        return _json_reply(200, {"success": True})

    def _create_branch(self, req: RecordedRequest, repo: str, rev: str) -> _Reply:
        repository = self._repo(req, repo)
        if rev in repository.branches or rev == "main" or rev.startswith("refs/"):
            raise _HubError(409, f"Reference already exists or is reserved: {rev}")
        starting_point = (self._body_json(req) or {}).get("startingPoint")
        head = self._revision(repository, starting_point) if starting_point else repository.head()
        repository.branches[rev] = head.oid if head is not None else None
        return _json_reply(200, {})

    def _commit(self, req: RecordedRequest, repo: str, rev: str) -> _Reply:
        repository = self._repo(req, repo)
        branch = self._branch(repository, rev)
        create_pr = req.query.get("create_pr", ["0"])[0] == "1"
        try:
            lines = req.ndjson()
        except ValueError as error:
            raise _HubError(400, f"FakeHub: commit body is not NDJSON: {error}") from error
        if not lines or lines[0].get("key") != "header" or not isinstance(lines[0].get("value"), dict):
            raise _HubError(400, "FakeHub: the first commit line must be the header")
        header = lines[0]["value"]
        if not header.get("summary"):
            raise _HubError(400, "FakeHub: the commit summary is empty")
        head = repository.head(branch)
        parent = header.get("parentCommit")
        if parent is not None and (head is None or not head.oid.startswith(parent)):
            raise _HubError(412, "A commit has happened since. Please refresh and try again.")

        # Build the new snapshot aside and only append it at the end: a rejected commit changes nothing.
        files = dict(head.files) if head else {}
        lfs_paths = set(head.lfs_paths) if head else set()
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path")
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
                raise _HubError(400, f"FakeHub: bad path in commit line {key}: {path!r}")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise _HubError(
                        400, f"FakeHub: unsupported encoding {value.get('encoding')!r} for {path}"
                    )
                try:
                    data = base64.b64decode(value.get("content", ""), validate=True)
                except ValueError as error:
                    raise _HubError(400, f"FakeHub: bad base64 content for {path}: {error}") from error
                if self._upload_mode(len(data)) == "lfs" and data:
                    raise _HubError(400, f"{path} ({len(data)} bytes) must be uploaded as an LFS file")
                files[path] = data
                lfs_paths.discard(path)
            elif key == "lfsFile":
                oid = value.get("oid")
                data = self.lfs_objects.get(oid) if value.get("algo") == "sha256" else None
                if data is None:
                    raise _HubError(400, f"FakeHub: LFS object {oid} for {path} was not uploaded")
                if "size" in value and value["size"] != len(data):
                    raise _HubError(
                        400, f"FakeHub: size {value['size']} of {path} does not match the LFS object"
                    )
                files[path] = data
                lfs_paths.add(path)
            elif key == "deletedFile":
                if path not in files:
                    raise _HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                del files[path]
                lfs_paths.discard(path)
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not doomed:
                    raise _HubError(
                        404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound"
                    )
                for p in doomed:
                    del files[p]
                    lfs_paths.discard(p)
            else:
                raise _HubError(400, f"FakeHub: unsupported commit line key {key!r}")
        answer: dict[str, Any] = {"success": True, "hookOutput": ""}
        if create_pr:  # the commit goes onto a new refs/pr/N branch that starts at the base branch's head
            number = 1 + sum(name.startswith("refs/pr/") for name in repository.branches)
            branch = f"refs/pr/{number}"
            repository.branches[branch] = head.oid if head is not None else None
            answer.update(pullRequestUrl=f"{self.url}/{repo}/discussions/{number}", pullRequestNum=number)
        commit = self._append_commit(
            repository, branch, header["summary"], header.get("description", ""), files, lfs_paths, lines[1:]
        )
        answer.update(commitOid=commit.oid, commitUrl=f"{self.url}/{repo}/commit/{commit.oid}")
        return _json_reply(200, answer)

    def _append_commit(
        self,
        repo: Repo,
        branch: str,
        message: str,
        description: str,
        files: dict[str, bytes],
        lfs_paths: set[str],
        operations: list[dict[str, Any]],
    ) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(f"{repo.repo_id}\n{parent}\n{len(repo.commits)}\n{message}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_oid(files[path])}\n".encode())
        commit = Commit(
            oid=digest.hexdigest(),
            parent=parent,
            message=message,
            description=description,
            files=files,
            lfs_paths=frozenset(lfs_paths),
            operations=operations,
            date=datetime.now(timezone.utc),
        )
        repo.commits.append(commit)
        repo.branches[branch] = commit.oid
        return commit


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the FakeHub; one connection per request keeps shutdown simple."""

    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        req = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )
        reply = hub._handle(req)
        if reply is None:  # held: close without a word
            self.close_connection = True
            return
        req.status = reply.status
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: FakeHub.requests is the log."""


# --------------------------------------------------------------------------------------------- network guard


class NetworkAccessBlocked(RuntimeError):
    """Raised on any attempt to resolve or connect to a non-loopback host while the guard is installed.

    A RuntimeError on purpose: huggingface_hub turns OSErrors into "offline, use the cache" fallbacks, which
    would hide the attempt.
    """


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): a local wildcard, no lookup
    if isinstance(host, bytes):
        host = host.decode()
    name = str(host).strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Makes socket lookups/connections to non-loopback hosts raise `NetworkAccessBlocked`; records them.

    Python sockets only: native code with its own sockets (the Rust hf_xet client) is not covered.
    """

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self._undo: list[Callable[[], None]] = []

    def _check(self, what: str, host: object) -> None:
        if not _is_loopback(host):
            self.blocked.append(f"{what} {host!r}")
            raise NetworkAccessBlocked(f"test network guard: {what} to non-loopback host {host!r} blocked")

    def install(self) -> NetworkGuard:
        """Patch socket.getaddrinfo, socket.create_connection and socket.socket.connect/connect_ex."""
        real_getaddrinfo = socket.getaddrinfo
        real_create_connection = socket.create_connection
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self._check("getaddrinfo", host)
            return real_getaddrinfo(host, *args, **kwargs)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            self._check("create_connection", address[0])
            return real_create_connection(address, *args, **kwargs)

        def connect(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self._check("connect", address[0])
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self._check("connect_ex", address[0])
            return real_connect_ex(sock, address)

        patches = [
            (socket, "getaddrinfo", getaddrinfo),
            (socket, "create_connection", create_connection),
            (socket.socket, "connect", connect),
            (socket.socket, "connect_ex", connect_ex),
        ]
        for owner, name, replacement in patches:
            original = getattr(owner, name)
            setattr(owner, name, replacement)
            self._undo.append(
                lambda owner=owner, name=name, original=original: setattr(owner, name, original)
            )
        return self

    def uninstall(self) -> None:
        """Restore the original socket functions."""
        while self._undo:
            self._undo.pop()()


def install_network_guard() -> NetworkGuard:
    """Install a process-wide guard (what the subprocess sitecustomize written by `hub_env` calls)."""
    return NetworkGuard().install()


# --------------------------------------------------------------------------------------------- client setup

_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "ws_proxy", "wss_proxy"}
_SITECUSTOMIZE = """\
# Written by tests/fake_hub.py: every Python process started with hub_env() refuses non-loopback hosts.
import sys
sys.path.insert(0, {tests_dir!r})
import fake_hub
fake_hub.install_network_guard()
del sys.path[0]
"""


def hub_env(
    hub: FakeHub, tmp_path: Path, *, token: str | None = FAKE_TOKEN, disable_xet: bool = False
) -> dict[str, str]:
    """Environment for a subprocess client of `hub`: HF_ENDPOINT, a private HF_HOME, a token, no proxies.

    Every HF_*/HUGGINGFACE_*/TRANSFORMERS_* variable of the parent is dropped (HF_HUB_OFFLINE or
    TRANSFORMERS_OFFLINE would block loopback too; HF_OIDC_RESOURCE would exchange tokens with the real Hub).
    A sitecustomize on PYTHONPATH installs the network guard in the child. `token=None`: no token at all.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))
        and name.lower() not in _PROXY_VARS
        and name.lower() != "no_proxy"
    }
    guard_dir = tmp_path / "fake_hub_site"
    guard_dir.mkdir(parents=True, exist_ok=True)
    (guard_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(tests_dir=str(Path(__file__).parent)))
    env.update(
        {
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
            "PYTHONPATH": os.pathsep.join([str(guard_dir), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
    )
    if token is not None:
        env["HF_TOKEN"] = token
    if disable_xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def isolate_hf_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the in-process huggingface_hub client safe to aim at a FakeHub, for one test.

    Telemetry off: with it on, the first user agent built fetches `{constants.ENDPOINT}/api/agent-harnesses`,
    i.e. huggingface.co unless HF_ENDPOINT was set before import. Offline mode off: it blocks loopback too.
    Loopback out of any proxy, and a fresh shared HTTP client, since httpx reads proxy variables when the
    client is created.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1,localhost,::1"])))
    close_session()


def patch_hub_endpoint(
    monkeypatch: pytest.MonkeyPatch,
    hub: FakeHub,
    tmp_path: Path,
    *,
    token: str | None = FAKE_TOKEN,
    disable_xet: bool = False,
) -> None:
    """Point the already-imported huggingface_hub at `hub` for one test, module-level functions included.

    HF_ENDPOINT is read once, at import, into `constants.ENDPOINT`, the download URL template and the
    `huggingface_hub.hf_api.api` singleton behind `huggingface_hub.create_repo` & co: all three are patched,
    with the cache and token paths (under `tmp_path`), `HF_TOKEN` and the Xet switch. Code that copied the
    endpoint elsewhere at import is not covered: run it in a subprocess with `hub_env` instead.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    isolate_hf_client(monkeypatch)
    home = tmp_path / "hf_home"
    for name, value in {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_HUB_DISABLE_XET": disable_xet,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": token is None,
    }.items():
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
    # Redirects are followed with the token only within these origins (computed at import).
    monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(hub.url)})
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)


# --------------------------------------------------------------------------------------------- fixtures


# Named *_fixture so that a test module can import them without ruff's F811 (a parameter shadowing an
# import), marking that import line "noqa F401"; or a conftest.py can say: pytest_plugins = ["fake_hub"].


@pytest.fixture(name="network_guard")
def network_guard_fixture() -> Iterator[NetworkGuard]:
    """Any lookup/connection to a non-loopback host raises; a test that leaves `blocked` non-empty fails."""
    guard = NetworkGuard().install()
    try:
        yield guard
    finally:
        guard.uninstall()
    if guard.blocked:
        pytest.fail(f"the test tried to reach the network: {guard.blocked}")


@pytest.fixture(name="fake_hub")
def fake_hub_fixture(network_guard: NetworkGuard, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A started FakeHub (every file inline, no token required), the network guard, `isolate_hf_client`."""
    from huggingface_hub.utils import close_session

    isolate_hf_client(monkeypatch)
    with FakeHub() as hub:
        yield hub
    close_session()  # the next test builds its client with its own environment
    if hub.server_errors:
        pytest.fail("FakeHub handler errors:\n" + "\n".join(hub.server_errors))


__all__ = [
    "FAKE_TOKEN",
    "Commit",
    "FakeHub",
    "NetworkAccessBlocked",
    "NetworkGuard",
    "RecordedRequest",
    "Repo",
    "fake_hub_fixture",
    "git_blob_oid",
    "hub_env",
    "install_network_guard",
    "isolate_hf_client",
    "lfs_pointer",
    "network_guard_fixture",
    "patch_hub_endpoint",
]
