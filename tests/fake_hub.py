"""A local HTTP server that answers like the Hugging Face hub's file endpoints.

`huggingface_hub` asks `HEAD {endpoint}/{repo}/resolve/{revision}/{file}` for the
commit, ETag (the SHA-256 for LFS files) and size, then GETs the bytes. Serving
that from 127.0.0.1 and pointing `HF_ENDPOINT` at it exercises our real
download, cache and verification code offline. `corrupt=True` serves bytes that
differ from the advertised hash, as a broken proxy or disk would.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.corrupt: set[tuple[str, str]] = set()
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _lookup(self):
                parts = unquote(self.path.split("?")[0]).strip("/").split("/")
                if "resolve" not in parts:
                    return None
                i = parts.index("resolve")
                repo, filename = "/".join(parts[:i]), "/".join(parts[i + 2 :])
                return (repo, filename) if (repo, filename) in hub.files else None

            def _headers(self, key, body: bytes) -> None:
                true_bytes = hub.files[key]
                digest = hashlib.sha256(true_bytes).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{digest}"')
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(len(true_bytes)))
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def _body(self, key) -> bytes:
                data = hub.files[key]
                if key in hub.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                return data

            def do_HEAD(self) -> None:  # noqa: N802 - http.server API
                hub.requests.append(f"HEAD {self.path}")
                key = self._lookup()
                if key is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._headers(key, self._body(key))

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(f"GET {self.path}")
                key = self._lookup()
                if key is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self._body(key)
                self._headers(key, body)
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
