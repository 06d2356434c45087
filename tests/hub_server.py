"""A tiny in-memory stand-in for the part of the Hugging Face Hub that restorer talks to.

It serves, on 127.0.0.1, what ``huggingface_hub.hf_hub_download`` and ``HfApi.model_info`` use:

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: answers with ``X-Repo-Commit``,
  ``ETag`` / ``X-Linked-Etag`` (the sha256, as the Hub does for LFS files), ``X-Linked-Size`` and
  ``Content-Length``; honours ``Range: bytes=N-`` (resume) with ``206``; never sends ``X-Xet-*``
  headers, so the client stays on plain HTTP; 404 with ``X-Error-Code: RepoNotFound``,
  ``RevisionNotFound`` or ``EntryNotFound``.
* ``GET /api/models/{repo_id}/revision/{revision}``: ``{"id", "sha", "siblings"}`` (each sibling with its
  ``size`` and ``lfs`` sha256).

Repos hold commits (commit id -> {filename: bytes}) and refs (branches/tags) that can move.
Every request is recorded in :attr:`FakeHub.requests` so tests can count network use.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

__all__ = ["FakeHub", "FakeRepo", "RecordedRequest"]


@dataclass
class FakeRepo:
    """Commits and refs of one model repo."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    range: str | None


class FakeHub:
    """In-memory Hub served over HTTP in a background thread; use as a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[RecordedRequest] = []
        # (repo_id, filename) -> number of bytes actually sent on GET, to simulate broken transfers.
        self.short_body: dict[tuple[str, str], int] = {}
        # (repo_id, filename) -> size advertised on HEAD and GET, and bytes sent (a consistently short file).
        self.short_file: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------- content
    def commit(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main") -> str:
        """Add a commit holding exactly ``files`` on top of nothing, move ``branch`` to it, return its id."""
        with self._lock:
            self._counter += 1
            repo = self.repos.setdefault(repo_id, FakeRepo())
            digest = hashlib.sha1(f"{repo_id}:{self._counter}".encode())
            for name in sorted(files):
                digest.update(name.encode() + hashlib.sha256(files[name]).digest())
            commit_id = digest.hexdigest()
            repo.commits[commit_id] = dict(files)
            repo.refs[branch] = commit_id
            return commit_id

    def tag(self, repo_id: str, tag: str, commit_id: str) -> None:
        """Point ``tag`` (or a branch) of ``repo_id`` at ``commit_id``."""
        with self._lock:
            self.repos[repo_id].refs[tag] = commit_id

    def count(self, method: str | None = None, *, contains: str = "") -> int:
        """Number of recorded requests, optionally of one method and whose path contains ``contains``."""
        with self._lock:
            return sum(
                1 for r in self.requests if (method is None or r.method == method) and contains in r.path
            )

    # ----------------------------------------------------------------------------------- server
    @property
    def endpoint(self) -> str:
        """Base URL to pass as ``endpoint=`` to huggingface_hub."""
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_HubHandler):
            fake_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None

    # ----------------------------------------------------------------------------------- lookup
    def _record(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, range_header))

    def _resolve(self, repo_id: str, revision: str) -> tuple[FakeRepo | None, str | None]:
        with self._lock:
            repo = self.repos.get(repo_id)
            if repo is None:
                return None, None
            if revision in repo.commits:
                return repo, revision
            return repo, repo.refs.get(revision)


def _split_repo_path(parts: list[str], marker: str) -> tuple[str, str, str] | None:
    """Split ``ns/name/<marker>/revision/rest...`` into (repo_id, revision, rest)."""
    if len(parts) < 4 or parts[2] != marker:
        return None
    return f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:]))


class _HubHandler(BaseHTTPRequestHandler):
    fake_hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._handle(send_body=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle(send_body=True)

    # ----------------------------------------------------------------------------------- routes
    def _handle(self, *, send_body: bool) -> None:
        hub = self.fake_hub
        path = urlsplit(self.path).path
        hub._record(self.command, path, self.headers.get("Range"))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and send_body:
            api = _split_repo_path(parts[2:], "revision")
            if api is not None:
                repo_id, revision, _ = api
                return self._model_info(repo_id, revision)
        resolve = _split_repo_path(parts, "resolve")
        if resolve is not None:
            return self._resolve_file(*resolve, send_body=send_body)
        self._error(404, "RepoNotFound", f"no route for {path}")

    def _model_info(self, repo_id: str, revision: str) -> None:
        repo, commit_id = self.fake_hub._resolve(repo_id, revision)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        if commit_id is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        body = json.dumps(
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": commit_id,
                "private": False,
                # Every file is reported as an LFS object, with its sha256 and size (as the Hub does
                # for large files when asked for file metadata).
                "siblings": [
                    {"rfilename": name, "size": len(data),
                     "lfs": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
                    for name, data in sorted(repo.commits[commit_id].items())
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _resolve_file(self, repo_id: str, revision: str, filename: str, *, send_body: bool) -> None:
        hub = self.fake_hub
        repo, commit_id = hub._resolve(repo_id, revision)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found", send_body=send_body)
        if commit_id is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", send_body=send_body)
        data = repo.commits[commit_id].get(filename)
        if data is None:
            return self._error(
                404, "EntryNotFound", f"{filename} not found", commit_id=commit_id, send_body=send_body
            )
        sha256 = hashlib.sha256(data).hexdigest()
        advertised = hub.short_file.get((repo_id, filename), len(data))
        data = data[:advertised]
        start = 0
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes=") and range_header.endswith("-"):
            start = int(range_header[len("bytes=") : -1])
        body = data[start:]
        sent = min(hub.short_body.get((repo_id, filename), len(body)), len(body)) if send_body else len(body)
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", commit_id)
        self.send_header("ETag", f'"{sha256}"')
        self.send_header("X-Linked-Etag", f'"{sha256}"')
        self.send_header("X-Linked-Size", str(advertised))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{advertised - 1}/{advertised}")
        # A "short body" transfer is announced with its real (short) length, so the connection stays
        # sane and the client notices only by comparing with X-Linked-Size.
        self.send_header("Content-Length", str(sent))
        self.end_headers()
        if send_body:
            self.wfile.write(body[:sent])

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        *,
        commit_id: str | None = None,
        send_body: bool = True,
    ) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit_id is not None:
            self.send_header("X-Repo-Commit", commit_id)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
