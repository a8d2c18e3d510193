"""An offline Circularo: login, webhooks and documents under ``/api/v1``, state in SQLite,
and notifications delivered, signed, to every webhook's callback URL.

Run it as ``circtoolkit sandbox`` or in-process::

    with Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sb:
        client = sb.client("admin@acme.test")
        client.create_webhook("http://127.0.0.1:9000/hook", hmac_secret="s3cret")
        sb.simulate(documents=20, seed=1)
        sb.wait_for_deliveries()
        sb.deliveries()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._server import BackgroundServer, Service
from .app import API_PREFIX, RELAY_PREFIX, create_app
from .delivery import DEFAULT_RETRY_SCHEDULE, FAST_RETRY_SCHEDULE, DeliveryEngine, Outbox
from .state import (
    ACCOUNTS,
    ACCOUNTS_BY_NAME,
    DEMO_PASSWORD,
    ORGANIZATIONS,
    TENANT,
    Account,
    ApiProblem,
    SandboxState,
)
from .workflow import Workflow

if TYPE_CHECKING:
    import pandas as pd

    from ..client import CircularoClient
    from .simulate import SimulationReport

__all__ = ["ACCOUNTS", "DEFAULT_RETRY_SCHEDULE", "DEMO_PASSWORD", "FAST_RETRY_SCHEDULE",
           "ORGANIZATIONS", "TENANT", "Account", "Sandbox", "create_app"]


class Sandbox(Service):
    """The sandbox served from a background thread (port 0 picks a free port).

    ``db`` is a SQLite file to keep state across restarts (in memory when None);
    ``token_ttl`` how many seconds a session token lives after its last use; ``clock``
    replaces ``time.time`` for tokens, documents and event timestamps (tests use it to
    expire tokens and sign requests without waiting). ``retry_schedule`` is the delays
    in seconds between delivery attempts: ``DEFAULT_RETRY_SCHEDULE`` (about two days)
    or ``FAST_RETRY_SCHEDULE`` (about three seconds, for demos); ``delivery_timeout``
    bounds each attempt.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, db: str | Path | None = None,
                 token_ttl: float = 3600.0, clock: Callable[[], float] = time.time,
                 retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
                 delivery_timeout: float = 10.0) -> None:
        self.host = host
        self.db = db
        self.state = SandboxState(db, token_ttl=token_ttl, clock=clock)
        self.engine = DeliveryEngine(self.state, retry_schedule=retry_schedule,
                                     timeout=delivery_timeout, sweep=self._sweep)
        self.workflow = Workflow(self.state, Outbox(self.state, self.engine.submit))
        self._server = BackgroundServer(create_app(self.state, self.workflow), host=host,
                                        port=port, name="circtoolkit-sandbox")
        self._closed = False

    def start(self) -> Sandbox:
        """Start serving and delivering (resuming what a previous run left pending)."""
        if self._closed:
            raise RuntimeError("this Sandbox was stopped; create a new one")
        self.engine.start()
        try:
            self._server.start()
        except BaseException:
            self.engine.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving and delivering, and close the database (idempotent).

        Deliveries not yet done stay pending in the database; a sandbox started later on
        the same ``db`` sends them.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._server.stop()
        finally:
            self.engine.stop()
            self.state.close()

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
    def relay_url(self) -> str:
        """The root URL of the relay embedded in the sandbox (``Listener(relay=...)``)."""
        return self._server.root_url + RELAY_PREFIX

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

    # -- events and deliveries -------------------------------------------------------

    def trigger(self, event: str, *, organization: str | None = "Acme",
                document_id: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """Emit one event through the real delivery path, as ``stripe trigger`` does.

        ``organization`` ("Acme", "Globex", or None for a tenant-wide document) picks
        which webhooks receive it. Returns the payload, the event id and the number of
        deliveries queued.
        """
        admin = ACCOUNTS_BY_NAME["global-admin@sandbox.test"]
        try:
            return self.workflow.trigger(admin, event, organization, document_id, actor)
        except ApiProblem as problem:
            raise ValueError(problem.message) from None

    def _sweep(self) -> int:
        return self.workflow.sweep()

    def expire_due(self) -> int:
        """Expire the sign requests past their ``validUntil`` now (the engine also does
        it four times a second); returns how many expired."""
        return self.workflow.expire_due()

    def wait_for_deliveries(self, timeout: float = 30.0) -> None:
        """Block until every delivery so far is delivered, failed, gone or cancelled.

        Raises ``TimeoutError`` saying how many are still pending.
        """
        self.engine.check()
        if not self.engine.wait_idle(timeout):
            raise TimeoutError(f"{self.engine.outstanding} deliveries still pending after "
                               f"{timeout:g} s")

    def deliveries(self, *, attempts: bool = True) -> pd.DataFrame:
        """Every delivery attempt (``attempts=False``: every delivery) as a DataFrame."""
        from .records import deliveries_frame

        return deliveries_frame(self.state, attempts=attempts)

    def events(self) -> pd.DataFrame:
        """Every event the sandbox emitted, in order, as a DataFrame."""
        from .records import events_frame

        return events_frame(self.state)

    def simulate(self, documents: int = 100, *, seed: int | None = None,
                 organization: str | None = None, span: float = 7 * 86400,
                 progress: bool = True) -> SimulationReport:
        """Drive ``documents`` documents through the workflow on a compressed clock.

        Most complete; some are rejected, expire or are cancelled. Signers, delays and
        outcomes come from ``seed``: the same seed gives the same events and payloads
        apart from ids and times. Event times spread over the ``span`` seconds before
        now. Shows a progress bar (tqdm) unless ``progress=False``.
        """
        from .simulate import simulate

        return simulate(self.workflow, documents=documents, seed=seed,
                        organization=organization, span=span, progress=progress)

    def __repr__(self) -> str:
        where = self.url if self.is_running else "stopped"
        return f"<Sandbox {where} db={self.db or ':memory:'}>"
