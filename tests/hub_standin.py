"""A tiny HTTP server on 127.0.0.1 answering `auth-check` like the Hugging Face Hub does.

Tokens decide the answer: GOOD_TOKEN may read every repo, NO_ACCESS_TOKEN is a valid user
without access to the gated repos (403 GatedRepo), anything else is rejected (401 "Invalid
credentials"), as the real Hub answers. Requests are recorded for assertions.

Downloads (snapshot_download / hf_hub_download / model_info with sizes) are served for
GOOD_TOKEN: every repo holds FILES unless ``repos[repo]`` says otherwise (any revision:
the revision asked is recorded). ``Range: bytes=N-`` gets a 206 like the Hub's CDN, so an
interrupted download resumes; ``cut_after[name] = n`` makes the next full GET of that file
stop after n bytes and drop the connection (a server dying mid-file); ``rate`` (bytes/s)
throttles file bodies so progress can be watched.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

GOOD_TOKEN = "hf_goodTokenAbcdefghijklmnopqrstuvw"
NO_ACCESS_TOKEN = "hf_noAccessTokenAbcdefghijklmnopqr"
AUTH_CHECK = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/auth-check$")
# repo ids: owner/name, or a legacy canonical name such as t5-base / roberta-base
REVISION = re.compile(r"^/api/models/(?P<repo>[^/]+(/[^/]+)?)(/revision/(?P<rev>[^/]+))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+(/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# What --prefetch downloads (snapshot_download): small stand-in weight files.
# Like the real config, it names the text encoder that loading fetches (prefetched too).
TEXT_ENCODER = "google-t5/t5-base"
FILES = {"config.json": json.dumps({"stand_in": True, "text_encoder": {"name": TEXT_ENCODER}}
                                  ).encode() + b"\n",
         "checkpoint.pt": bytes(range(256)) * 64}


def _size(data: bytes | Path) -> int:
    return data.stat().st_size if isinstance(data, Path) else len(data)


def _etag(data: bytes | Path) -> str:
    if isinstance(data, Path):
        stat = data.stat()
        return hashlib.sha256(f"{data}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return hashlib.sha256(data).hexdigest()[:16]


class HubStandin:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.repos: dict[str, dict[str, bytes | Path]] = {}
        self.urls: dict[str, bytes | Path] = {}  # plain files, no token (a CDN)
        self.cut_after: dict[str, int] = {}
        self.rate: float | None = None
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                auth = self.headers.get("Authorization", "")
                asked = self.headers.get("Range")  # recorded only when sent (a resume)
                standin.requests.append({"path": self.path, "authorization": auth,
                                         **({"range": asked} if asked else {})})
                path = unquote(urlsplit(self.path).path)
                if path in standin.urls:
                    return self._serve_file(path, standin.urls[path], head=False)
                if REVISION.match(path) or RESOLVE.match(path):
                    return self._serve_repo(auth, head=False)
                match = AUTH_CHECK.match(self.path)
                if not match:
                    return self._send(404, {"error": "not found"}, {"X-Error-Code": "RepoNotFound"})
                repo = match["repo"]
                token = auth.removeprefix("Bearer ").strip()
                if token == GOOD_TOKEN:
                    return self._send(200, {"id": repo})
                if token == NO_ACCESS_TOKEN:
                    message = (f"Access to model {repo} is restricted and you are not in the "
                               f"authorized list. Visit https://huggingface.co/{repo} to ask "
                               "for access.")
                    return self._send(403, {"error": message},
                                      {"X-Error-Code": "GatedRepo", "X-Error-Message": message})
                message = "Invalid credentials in Authorization header"
                return self._send(401, {"error": message}, {"X-Error-Message": message})

            def do_HEAD(self) -> None:  # noqa: N802
                standin.requests.append({"path": self.path, "method": "HEAD",
                                         "authorization": self.headers.get("Authorization", "")})
                path = unquote(urlsplit(self.path).path)
                if path in standin.urls:
                    return self._serve_file(path, standin.urls[path], head=True)
                self._serve_repo(self.headers.get("Authorization", ""), head=True)

            def _serve_repo(self, auth: str, head: bool) -> None:
                """Just enough of the Hub for snapshot_download, for GOOD_TOKEN only."""
                if auth.removeprefix("Bearer ").strip() != GOOD_TOKEN:
                    return self._send(401, {"error": "no"}, {"X-Error-Message": "no"})
                path = unquote(urlsplit(self.path).path)
                match = REVISION.match(path)
                if match:
                    files = standin.files(match["repo"])
                    return self._send(200, {"id": match["repo"], "sha": COMMIT, "siblings": [
                        {"rfilename": name, "size": _size(data)} for name, data in files.items()]})
                match = RESOLVE.match(path)
                data = standin.files(match["repo"]).get(match["file"]) if match else None
                if data is None:
                    return self._send(404, {"error": "no"}, {"X-Error-Code": "EntryNotFound"})
                return self._serve_file(match["file"], data, head)

            def _serve_file(self, name: str, data: bytes | Path, head: bool) -> None:
                start = 0
                asked = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if asked and not head:
                    start = int(asked[1])
                self.send_response(206 if start else 200)
                size = _size(data)
                headers = {"X-Repo-Commit": COMMIT, "Content-Length": str(size - start),
                           "ETag": f'"{_etag(data)}"'}
                if start:
                    headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self._body(data, start, standin.cut_after.pop(name.rsplit("/", 1)[-1], None)
                               if not start else None)

            def _body(self, data: bytes | Path, start: int, cut: int | None) -> None:
                step = 64 * 1024
                with (open(data, "rb") if isinstance(data, Path) else io.BytesIO(data)) as src:
                    src.seek(start)
                    sent = 0
                    while block := src.read(step):
                        if cut is not None and sent >= cut:
                            self.wfile.flush()
                            self.close_connection = True
                            self.connection.shutdown(2)  # the server "dies" mid-file
                            return
                        self.wfile.write(block)
                        sent += len(block)
                        if standin.rate:
                            time.sleep(step / standin.rate)

            def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def files(self, repo: str) -> dict[str, bytes | Path]:
        """A repo's files: bytes, or a Path served from disk (big real checkpoints)."""
        return self.repos.get(repo, FILES)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
