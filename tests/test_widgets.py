"""The widgets, headless: their traits, and every button's handler, on a real sandbox
and a real listener."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from circtoolkit import CircularoClient, sign
from circtoolkit.listener import Listener
from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, ORGANIZATIONS, Sandbox
from circtoolkit.widgets import Dashboard, EventMonitor, SignatureTester, WebhookManager
from circtoolkit.widgets.logic import (
    check_callback_url,
    generate_secret,
    html_table,
    webhook_rows,
)

from .conftest import ACME_ADMIN, GLOBAL_ADMIN, SIGNER

SECRET = "widget-secret"


@pytest.fixture
def live() -> Iterator[Sandbox]:
    with Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
        yield sandbox


# -- logic -----------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "problem"), [
    ("", "empty"), ("ftp://x.example/h", "http:// or https://"), ("https://", "no host"),
    ("https://a b.example/", "spaces"), ("https://hooks.example/h", None)])
def test_check_callback_url(url: str, problem: str | None) -> None:
    found = check_callback_url(url)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_generated_secrets_are_fresh_and_long() -> None:
    assert len({generate_secret() for _ in range(20)}) == 20
    assert len(generate_secret()) == 32


def test_rows_mask_secrets_unless_revealed(live: Sandbox) -> None:
    client = live.client(ACME_ADMIN)
    client.create_webhook("https://hooks.example/a", hmac_secret="visible-only-if-revealed")
    hooks = list(client.list_webhooks())
    masked = webhook_rows(hooks, {ORGANIZATIONS["Acme"]: "Acme"})
    assert masked[0]["secret"] == "****" and masked[0]["organization"] == "Acme"
    assert webhook_rows(hooks, reveal=True)[0]["secret"] == "visible-only-if-revealed"
    assert "<script>" not in html_table([{"x": "<script>alert(1)</script>"}])


# -- WebhookManager ----------------------------------------------------------------------

def test_manager_lists_creates_and_deletes_with_confirmation(live: Sandbox) -> None:
    client = live.client(ACME_ADMIN)
    manager = WebhookManager(client)
    assert "no webhooks yet" in manager.table.value
    assert manager.organization.layout.display == "none"  # an organization admin
    manager.callback_url.value = "https://hooks.example/acme"
    manager.generate_button.click()
    secret = manager.secret.value
    assert len(secret) == 32
    manager.create_button.click()
    [hook] = client.list_webhooks()
    assert hook.hmac_secret == secret
    assert hook.id in manager.table.value and secret not in manager.table.value
    manager.reveal.value = True
    assert secret in manager.table.value
    manager.delete_buttons[hook.id].click()
    assert manager.confirm_box.layout.display == ""
    manager.cancel_button.click()
    assert len(client.list_webhooks()) == 1
    manager.delete_buttons[hook.id].click()
    manager.confirm_button.click()
    assert len(client.list_webhooks()) == 0
    assert f"webhook {hook.id} deleted" in manager.status.value
    other = live.client(ACME_ADMIN)
    other.create_webhook("https://hooks.example/b")
    manager.refresh_button.click()
    assert "hooks.example/b" in manager.table.value


def test_manager_shows_errors_as_messages(live: Sandbox) -> None:
    manager = WebhookManager(live.client(ACME_ADMIN))
    manager.callback_url.value = "not a url"
    manager.create_button.click()
    assert "spaces" in manager.status.value and "#b00020" in manager.status.value
    manager.callback_url.value = "https://hooks.example/x"
    manager.type_choice.options = ["organization", "tenant"]
    manager.type_choice.value = "tenant"  # not allowed for an organization admin
    manager.create_button.click()
    assert "could not create the webhook" in manager.status.value
    assert "field: type" in manager.status.value
    refused = WebhookManager(live.client(SIGNER))  # no use_webhooks: a message, no traceback
    assert "could not list webhooks" in refused.status.value and "403" in refused.status.value


def test_manager_for_a_global_admin_names_the_organization(live: Sandbox) -> None:
    manager = WebhookManager(live.client(GLOBAL_ADMIN))
    assert manager.organization.layout.display == ""
    assert list(manager.type_choice.options) == ["organization", "tenant"]
    manager.organization.value = "Globex"
    manager.callback_url.value = "https://hooks.example/globex"
    manager.create_button.click()
    [hook] = live.client(GLOBAL_ADMIN).list_webhooks()
    assert hook.name == ORGANIZATIONS["Globex"]


# -- EventMonitor --------------------------------------------------------------------------

def post(listener: Listener, n: int, event: str = "documentSigned", secret: str = SECRET
         ) -> None:
    body = json.dumps({"documentId": f"doc-{n}", "event": event, "actor": "bob@acme.test",
                       "timestamp": "2026-01-01T09:00:00.000Z"}).encode()
    requests.post(listener.url, data=body, timeout=5, headers={
        "Content-Type": "application/json", "x-circularo-signature": sign(body, secret)})


def test_monitor_counts_filters_and_exports(tmp_path: Path) -> None:
    with Listener(SECRET) as listener:
        monitor = EventMonitor(listener, auto_refresh=False)
        assert "<b>0</b> verified" in monitor.counters.value
        assert "waiting for events" in monitor.latest.value
        for n in range(3):
            post(listener, n)
        post(listener, 3, "documentCompleted")
        post(listener, 0)  # a duplicate
        post(listener, 9, secret="forged")  # rejected
        listener.wait_for(4)
        monitor.redraw()
        assert "<b>3</b> documentSigned" in monitor.counters.value
        assert "<b>1</b> documentCompleted" in monitor.counters.value
        assert "<b>4</b> verified" in monitor.counters.value
        assert "<b>1</b> duplicates" in monitor.counters.value
        assert "<b>1</b> rejected" in monitor.counters.value
        monitor.event_filter.value = "documentCompleted"
        assert "doc-3" in monitor.latest.value and "doc-1" not in monitor.latest.value
        monitor.event_filter.value = ""
        monitor.document_filter.value = "doc-1"
        assert list(monitor.view()["documentId"]) == ["doc-1"]
        monitor.export_path.value = str(tmp_path / "view.csv")
        monitor.export_button.click()
        exported = pd.read_csv(tmp_path / "view.csv")
        assert list(exported["documentId"]) == ["doc-1"]
        assert "1 events written" in monitor.status.value
        monitor.document_filter.value = ""
        monitor.export_path.value = str(tmp_path / "missing" / "dir" / "x.csv")
        assert monitor.export() is None and "could not write" in monitor.status.value
        monitor.close()


def test_monitor_follows_the_listener_by_itself() -> None:
    with Listener(SECRET) as listener:
        monitor = EventMonitor(listener, interval=0.05)
        try:
            for n in range(5):
                post(listener, n)
            monitor.wait_until_drawn(5)
            assert "<b>5</b> documentSigned" in monitor.counters.value
        finally:
            monitor.stop()
        assert not monitor._thread.is_alive()


# -- Dashboard and SignatureTester ---------------------------------------------------------

def test_dashboard_connects_the_listener_in_one_click(live: Sandbox) -> None:
    with Listener() as listener:  # no secret yet: connect gives it one
        client: CircularoClient = live.client(ACME_ADMIN)
        dashboard = Dashboard(client, listener, auto_refresh=False)
        dashboard.connect_button.click()
        webhook = dashboard.connected
        assert webhook is not None and webhook.callback_url == listener.url
        assert webhook.id in dashboard.manager.table.value
        dashboard.trigger_button.click()  # no sandbox given: says so
        assert "sandbox only" in dashboard.status.value
        with_sandbox = Dashboard(client, listener, sandbox=live, auto_refresh=False)
        with_sandbox.trigger_choice.value = "documentCompleted"
        with_sandbox.trigger_button.click()
        assert "sent documentCompleted" in with_sandbox.status.value
        assert "to 1 webhook(s)" in with_sandbox.status.value
        live.wait_for_deliveries(10)
        listener.wait_for(1)
        with_sandbox.close()
        assert listener.events["verified"].tolist() == [True]
        dashboard.monitor.redraw()
        assert "<b>1</b> documentCompleted" in dashboard.monitor.counters.value
        dashboard.close()


def test_signature_tester_signs_and_judges() -> None:
    tester = SignatureTester()
    tester.secret.value = "Gh1!f5dFs0dA"
    tester.sign_button.click()
    assert tester.signature.value == sign(tester.body.value.encode(), "Gh1!f5dFs0dA")
    tester.verify_button.click()
    assert "valid" in tester.verdict.value and "invalid" not in tester.verdict.value
    tester.body.value += " "
    tester.verify_button.click()
    assert "invalid" in tester.verdict.value
    tester.secret.value = ""
    tester.sign_button.click()
    assert "must not be empty" in tester.verdict.value


def test_widgets_import_the_core_and_not_the_reverse() -> None:
    import subprocess
    import sys

    code = ("import sys, circtoolkit, circtoolkit.listener, circtoolkit.analysis; "
            "print(any(m.startswith(('ipywidgets', 'circtoolkit.widgets')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_monitor_leaves_listener_errors_to_the_user_and_keeps_watching() -> None:
    from circtoolkit import ListenerError

    with Listener(SECRET) as listener:
        listener.on_event(lambda event: 1 / 0)  # a user's callback that fails
        monitor = EventMonitor(listener, interval=0.05)
        try:
            post(listener, 1)
            monitor.wait_until_drawn(1)
            post(listener, 2)
            monitor.wait_until_drawn(2)  # still watching
        finally:
            monitor.stop()
        with pytest.raises(ListenerError, match="division by zero"):
            listener.wait_for(0)  # the error reached its owner


def test_connect_twice_keeps_one_webhook_and_ids_are_escaped(live: Sandbox) -> None:
    with Listener() as listener:
        dashboard = Dashboard(live.client(ACME_ADMIN), listener, auto_refresh=False)
        first = dashboard.connect()
        again = dashboard.connect()
        assert again is first and "already connected" in dashboard.status.value
        assert len(live.client(ACME_ADMIN).list_webhooks()) == 1
        dashboard.manager.ask_delete("<img src=x onerror=alert(1)>")
        assert "<img" not in dashboard.manager.confirm_text.value
        dashboard.close()


def test_an_unknown_session_is_a_readable_message(live: Sandbox) -> None:
    stale = CircularoClient(live.url, token="x" * 64)
    manager = WebhookManager(stale)
    assert "401" in manager.status.value and "Traceback" not in manager.status.value
    assert "x" * 64 not in manager.status.value
