"""A local HTTP server on 127.0.0.1 for the remote-read tests: it serves files from memory, honours single Range
requests (206 with Content-Range) and counts the requests and body bytes it serves. Python's http.server does not
honour Range itself."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Served:
    """The files served ({path: bytes}), what was served, and how a file may lie: ``claimed`` sizes ({path: size})
    announced in place of the real one (the body stays the real bytes, so a range past them comes back short)."""

    files: dict[str, bytes]
    claimed: dict[str, int] = field(default_factory=dict)
    bytes_served: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.bytes_served = 0
            self.ranges.clear()


@contextmanager
def serving(files: dict[str, bytes], claimed: dict[str, int] | None = None,
            ranges: bool = True) -> Iterator[tuple[str, Served]]:
    """(the server's base URL, its counters) while it runs in a thread; with ``ranges=False`` it ignores Range headers
    and serves whole files, as some servers do."""
    served = Served(files, claimed or {})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _file(self) -> bytes | None:
            body = served.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            return body

        def do_HEAD(self) -> None:
            body = self._file()
            if body is not None:
                self.send_response(200)
                self.send_header("Content-Length", str(served.claimed.get(self.path, len(body))))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

        def do_GET(self) -> None:
            body = self._file()
            if body is None:
                return
            size = served.claimed.get(self.path, len(body))
            match = _RANGE.match(self.headers.get("Range", "")) if ranges else None
            if match:
                begin = int(match.group(1))
                end = min(int(match.group(2)) + 1 if match.group(2) else size, size)
                chunk = body[begin:end]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {begin}-{end - 1}/{size}")
            else:
                begin, chunk = 0, body
                self.send_response(200)
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            # Counted before it is sent: the client may go on (and the test look) as soon as the bytes arrive.
            with served.lock:
                served.bytes_served += len(chunk)
                served.ranges.append((begin, begin + len(chunk)))
            self.wfile.write(chunk)

    with serving_handler(Handler) as base:
        yield base, served


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up (on a flood, on a stall) is what the tests make it do


@contextmanager
def serving_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server of ``handler`` on 127.0.0.1, in a thread of its own while the block runs; yields its base URL."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
