"""An offline Circularo: the login and webhook API under ``/api/v1``, state in SQLite.

Run it as ``circtoolkit sandbox`` or in-process::

    with Sandbox() as sb:
        client = sb.client("admin@acme.test")
        client.create_webhook("https://example.com/hook")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._server import BackgroundServer
from .app import API_PREFIX, create_app
from .state import ACCOUNTS, DEMO_PASSWORD, ORGANIZATIONS, TENANT, Account, SandboxState

if TYPE_CHECKING:
    from ..client import CircularoClient

__all__ = ["ACCOUNTS", "DEMO_PASSWORD", "ORGANIZATIONS", "TENANT", "Account", "Sandbox",
           "create_app"]


class Sandbox:
    """The sandbox served from a background thread (port 0 picks a free port).

    ``db`` is a SQLite file to keep state across restarts (in memory when None);
    ``token_ttl`` how many seconds a session token lives after its last use; ``clock``
    replaces ``time.time`` (tests use it to expire tokens without waiting).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, db: str | Path | None = None,
                 token_ttl: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.db = db
        self.state = SandboxState(db, token_ttl=token_ttl, clock=clock)
        self._server = BackgroundServer(create_app(self.state), host=host, port=port,
                                        name="circtoolkit-sandbox")
        self._closed = False

    def start(self) -> Sandbox:
        """Start serving; returns at once when the sandbox accepts connections."""
        if self._closed:
            raise RuntimeError("this Sandbox was stopped; create a new one")
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._server.stop()
        finally:
            self.state.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """Whether the sandbox is serving."""
        return self._server.is_running

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._server.port

    @property
    def root_url(self) -> str:
        """``http://host:port``, the equivalent of ``https://sandbox.circularo.com``."""
        return self._server.root_url

    @property
    def url(self) -> str:
        """The API base URL, ending in ``/api/v1``: pass it to ``CircularoClient``."""
        return self._server.root_url + API_PREFIX

    @property
    def accounts(self) -> tuple[Account, ...]:
        """The fixed demo accounts (password ``sandbox``)."""
        return ACCOUNTS

    def client(self, name: str = "admin@acme.test", password: str = DEMO_PASSWORD,
               **options: Any) -> CircularoClient:
        """A ``CircularoClient`` logged in to this sandbox as ``name``."""
        from ..client import CircularoClient

        self._server.check()
        return CircularoClient.login(self.url, name, password, **options)

    def __repr__(self) -> str:
        where = self.url if self.is_running else "stopped"
        return f"<Sandbox {where} db={self.db or ':memory:'}>"
