"""A sandbox restarted on the same --db file keeps its webhooks, API keys and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from circtoolkit import AuthenticationError, CircularoClient, Sandbox

from .conftest import ACME_ADMIN, FakeClock


def test_restart_keeps_webhooks_keys_and_tokens(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "sandbox.db"
    with Sandbox(db=db, clock=clock) as first:
        acme = first.client(ACME_ADMIN)
        hook = acme.create_webhook("https://hooks.example/a", hmac_secret="kept-secret")
        key = acme.create_api_key()
        revoked = acme.create_api_key()
        acme.revoke_api_key(revoked)
        token = acme.token
    with Sandbox(db=db, clock=clock) as second:
        by_token = CircularoClient(second.url, token=token)
        listed = by_token.list_webhooks()
        assert [w.id for w in listed] == [hook.id]
        assert listed[0] == hook  # every field, the secret included
        assert CircularoClient(second.url, token=key.key).whoami()["user"]["username"] == ACME_ADMIN
        with pytest.raises(AuthenticationError):
            CircularoClient(second.url, token=revoked.key).whoami()
        by_token.delete_webhook(hook)
    with Sandbox(db=db, clock=clock) as third:
        assert third.client(ACME_ADMIN).list_webhooks().total == 0


def test_tokens_are_not_stored_in_clear(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    with Sandbox(db=db) as sandbox:
        acme = sandbox.client(ACME_ADMIN)
        key = acme.create_api_key()
        token = acme.token
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token is not None
    assert token.encode() not in raw
    assert key.key.encode() not in raw


def test_in_memory_sandboxes_share_nothing() -> None:
    with Sandbox() as one, Sandbox() as two:
        one.client(ACME_ADMIN).create_webhook("https://hooks.example/a")
        assert two.client(ACME_ADMIN).list_webhooks().total == 0
        assert one.port != two.port


def test_a_stopped_sandbox_cannot_restart_and_stop_is_idempotent() -> None:
    sandbox = Sandbox()
    with sandbox:
        assert sandbox.is_running
    assert not sandbox.is_running
    sandbox.stop()
    with pytest.raises(RuntimeError, match="create a new one"):
        sandbox.start()


def test_a_busy_port_fails_in_the_callers_thread() -> None:
    with Sandbox() as running, pytest.raises(OSError):
        Sandbox(port=running.port).start()
