"""A latency- and fault-injecting HTTP proxy in front of an S3 endpoint (standard library only).

The loader's tests use it to inject transient faults, and ``benchmarks/loader.py`` to add the
first-byte latency of real S3 (about 20 ms) that a loopback endpoint hides.

It forwards every request unchanged (the Host header too, so SigV4 signatures still verify) and,
on GETs whose path contains ``match``, injects faults by a deterministic count: every
``fail_every``-th such request is answered ``503 ServiceUnavailable``, every ``drop_every``-th
has its connection closed without an answer, and any path containing ``always_fail`` is always
answered with ``status``. ``delay`` (seconds) is added before each forwarded request is sent
upstream, so it delays the answer's first byte; ``requests`` and ``bytes_out`` count what was
forwarded, ``whole_gets`` the matching GETs without a ``Range`` header (whole objects),
``heads`` the HEAD requests.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlparse

_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>injected fault</Message></Error>"
)
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


class FaultProxy:
    """Start with ``with FaultProxy(upstream, ...) as proxy:``; point clients at ``proxy.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        match: str = "/c/",
        fail_every: int = 0,
        drop_every: int = 0,
        always_fail: str | None = None,
        status: int = 503,
        delay: float = 0.0,
    ) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.match = match
        self.fail_every = fail_every
        self.drop_every = drop_every
        self.always_fail = always_fail
        self.status = status
        self.delay = delay
        self.matched = 0
        self.injected = 0
        self.requests = 0
        self.bytes_out = 0
        self.whole_gets = 0
        self.heads = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._clients: set[socket.socket] = set()

    @property
    def url(self) -> str:
        """The proxy's address (``http://127.0.0.1:PORT``), once started."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def decide(self, method: str, path: str) -> str | None:
        """``"fail"``, ``"drop"`` or None for one request."""
        if method != "GET" or self.match not in path:
            return None
        with self._lock:
            self.matched += 1
            n = self.matched
            fault = None
            if (self.always_fail and self.always_fail in path) or (
                self.fail_every and n % self.fail_every == 0
            ):
                fault = "fail"
            elif self.drop_every and n % self.drop_every == 1:
                fault = "drop"
            if fault:
                self.injected += 1
            return fault

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            _conn: http.client.HTTPConnection | None = None

            def _upstream_request(
                self, body: bytes | None
            ) -> tuple[http.client.HTTPResponse, bytes]:
                """Send the request upstream on this client's kept-alive connection."""
                for attempt in (0, 1):
                    if self._conn is None:
                        self._conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                    conn = self._conn
                    try:
                        conn.putrequest(
                            self.command, self.path, skip_host=True, skip_accept_encoding=True
                        )
                        for k, v in self.headers.items():
                            conn.putheader(k, v)
                        conn.endheaders(body)
                        resp = conn.getresponse()
                        data = resp.read()
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        self._conn = None
                        if attempt:
                            raise
                        continue  # the kept-alive connection was closed upstream: reconnect
                    if resp.will_close:
                        conn.close()
                        self._conn = None
                    return resp, data
                raise AssertionError("unreachable")

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._clients.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._clients.discard(self.connection)
                super().finish()
                if self._conn is not None:
                    self._conn.close()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy.decide(self.command, self.path)
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "fail":
                    code = proxy.status if proxy.always_fail else 503
                    self.send_response(code)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_ERROR)))
                    self.end_headers()
                    self.wfile.write(_ERROR)
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)
                resp, data = self._upstream_request(body)
                headers = resp.getheaders()
                with proxy._lock:
                    proxy.requests += 1
                    proxy.bytes_out += len(data)
                    proxy.heads += self.command == "HEAD"
                    if (
                        self.command == "GET"
                        and proxy.match in self.path
                        and "Range" not in self.headers
                    ):
                        proxy.whole_gets += 1
                self.send_response(resp.status, resp.reason)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

        class Server(ThreadingHTTPServer):
            # The default listen backlog (5) drops connection bursts: a client with many
            # requests in flight then waits for TCP's SYN retransmit (1 s and more).
            request_queue_size = 256

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            # Kept-alive client connections hold a handler thread each, waiting for the next
            # request: end them, so no thread outlives the proxy.
            with self._lock:
                clients = list(self._clients)
            for sock in clients:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
