"""Running the sandbox gateway with uvicorn: blocking :func:`serve` or :class:`SandboxServer`.

:class:`SandboxServer` binds a loopback port (0 picks a free one) and serves from a
background thread, for tests and demos::

    with SandboxServer(SandboxConfig(slow_delay=0.2)) as gateway:
        httpx.post(f"{gateway.url}/recurrentPayment.do", json={...})
        assert gateway.ledger.deposited_count() == 1
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from billing.errors import BillingError
from billing.sandbox.app import SandboxConfig, create_app
from billing.sandbox.ledger import Ledger

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def serve(host: str = "127.0.0.1", port: int = 8080, config: SandboxConfig | None = None) -> None:
    """Serve the sandbox gateway until interrupted (Ctrl+C).

    No access log: a line per call would cost more CPU than the call itself under load
    (``GET /sandbox/requests`` lists the calls served).
    """
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        lifespan="off",
        # Longer than a client's idle keep-alive (httpx: 5 s): a pooled connection is never
        # closed by the server at the moment the client reuses it (a reset, "maybe sent").
        timeout_keep_alive=75,
    )


class SandboxServer:
    """The sandbox gateway served by uvicorn in a background thread.

    ``start()``/``stop()`` or use it as a context manager. ``stop()`` cuts short every
    delayed answer (``slow``, ``timeout``, latency) so it returns quickly.
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.ledger = Ledger()
        self._requested_port = port
        self._stopping = threading.Event()
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise BillingError("the sandbox server is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``: where ``/sandbox/...`` controls live."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL of the gateway methods, e.g. ``http://127.0.0.1:54321/payment/rest``."""
        return self.root_url + self.config.gateway_path

    def start(self) -> SandboxServer:
        """Bind the port and serve in a background thread; returns once accepting."""
        if self._thread is not None:
            raise BillingError("the sandbox server is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        app = create_app(self.config, ledger=self.ledger, stopping=self._stopping)
        uv_config = uvicorn.Config(
            app,
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=75,
        )
        server = uvicorn.Server(uv_config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sandbox-gateway", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise BillingError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
