"""Run an ASGI app with uvicorn in a background thread (the sandbox, later the listener).

Modelled on pytest-httpserver: the socket is bound in the caller's thread (so port 0
is read back at once and a busy port fails where the caller can see it), ``start()``
returns once the server accepts connections, and a failure inside the server thread is
re-raised in the caller's thread by the next ``check()``, ``start()`` or ``stop()``.
Nothing is printed from the server thread.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Self

import uvicorn

from ._redact import install_log_redaction

__all__ = ["BackgroundServer", "BoundAddress", "ServedApp", "ServerError", "Service"]


class ServerError(RuntimeError):
    """The background server failed to start or died."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6), ready for uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Service:
    """Something with ``start()`` (returning itself) and ``stop()``, usable as
    ``with Thing() as thing:`` (the sandbox, the listener, the relay, the receiver)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ServedApp(Service):
    """A service that is one ASGI app on a ``BackgroundServer`` (``self._server``)."""

    _server: BackgroundServer

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def is_running(self) -> bool:
        """Whether it is serving."""
        return self._server.is_running


class BoundAddress:
    """The address of a server that binds its own socket: ``port`` (port 0 resolved)
    and ``root_url``, valid while it runs. Subclasses set ``host``, ``name``, ``_port``."""

    host: str
    name: str
    _port: int | None

    @property
    def port(self) -> int:
        """The port actually bound (resolves port 0); only valid while running."""
        if self._port is None:
            raise ServerError(f"{self.name} is not running")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class BackgroundServer(BoundAddress):
    """One uvicorn server for ``app`` on its own thread and event loop."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "circtoolkit-server", **uvicorn_options: Any) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.name = name
        self.uvicorn_options = uvicorn_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        self._port: int | None = None

    @property
    def is_running(self) -> bool:
        """Whether the server thread is alive and serving."""
        return bool(self._thread and self._thread.is_alive() and self._server
                    and self._server.started and not self._server.should_exit)

    def start(self, timeout: float = 10.0) -> None:
        """Bind, start the thread and wait until the server accepts connections."""
        self.check()
        if self._thread is not None:
            raise ServerError(f"{self.name} is already running")
        self._socket = bind_socket(self.host, self.requested_port)
        self._port = self._socket.getsockname()[1]
        options: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "off",
                                   "interface": "asgi3",
                                   "timeout_graceful_shutdown": 2}
        options.update(self.uvicorn_options)
        config = uvicorn.Config(self.app, **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        ready = threading.Event()
        deadline = timeout
        step = 0.005
        while not self._server.started:
            if not self._thread.is_alive():
                break
            if deadline <= 0:
                self.stop()
                raise ServerError(f"{self.name} did not start within {timeout} s")
            ready.wait(step)
            deadline -= step
        if not self._server.started:
            self._cleanup()
            self.check()
            raise ServerError(f"{self.name} exited during startup")

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:
            self._error = exc

    def check(self) -> None:
        """Re-raise, in the caller's thread, an error that ended the server thread."""
        error, self._error = self._error, None
        if error is not None:
            raise ServerError(f"{self.name} failed: {error!r}") from error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        self._cleanup()
        self.check()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._port = None
        self._thread = None
        self._server = None


logging.getLogger("uvicorn.error").addHandler(logging.NullHandler())
install_log_redaction()
