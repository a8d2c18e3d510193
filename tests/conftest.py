"""Shared fixtures: a real sandbox on loopback, logged-in clients, a controllable clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from circtoolkit import CircularoClient, Sandbox

ACME_ADMIN = "admin@acme.test"
GLOBEX_ADMIN = "admin@globex.test"
GLOBAL_ADMIN = "global-admin@sandbox.test"
SIGNER = "signer@acme.test"


class FakeClock:
    """A clock that moves only when told to (seconds since the epoch)."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(token_ttl=600, clock=clock) as sb:
        yield sb


@pytest.fixture
def acme(sandbox: Sandbox) -> CircularoClient:
    return sandbox.client(ACME_ADMIN)


@pytest.fixture
def globex(sandbox: Sandbox) -> CircularoClient:
    return sandbox.client(GLOBEX_ADMIN)


@pytest.fixture
def admin(sandbox: Sandbox) -> CircularoClient:
    return sandbox.client(GLOBAL_ADMIN)


@pytest.fixture
def signer(sandbox: Sandbox) -> CircularoClient:
    return sandbox.client(SIGNER)


def emitted(sandbox: Sandbox, document_id: str | None = None) -> list[tuple[str, str]]:
    """(event, actor) of every event the sandbox emitted (for one document), in order."""
    frame = sandbox.events()
    if document_id is not None:
        frame = frame[frame["document_id"] == document_id]
    return list(zip(frame["event"].astype(str), frame["actor"], strict=True))
