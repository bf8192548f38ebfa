"""A webhook receiver over real HTTP for the end-to-end tests: the one copy of the little
``ThreadingHTTPServer`` the sender posts to.

A test subclasses :class:`Receiver` and decides in :meth:`Receiver.answer` what to record
and which status to answer (or ``None``: hold the request and never answer). It serves on
127.0.0.1 only, on a free port, and must never decide whether a delivery was right: the
tests assert that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Serves POSTs to ``/hooks``, each handed to :meth:`answer` (headers lower-cased)."""

    def answer(self, headers: dict[str, str], body: bytes) -> int | None:
        """The HTTP status to answer with; ``None`` leaves the request unanswered."""
        return 200

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        """Start serving in a daemon thread: the server and the URL to register."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
                if status is None:
                    return
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hooks"

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve while the block runs (yields the URL); shut down and close after it."""
        server, url = self.serve()
        try:
            yield url
        finally:
            server.shutdown()
            server.server_close()
