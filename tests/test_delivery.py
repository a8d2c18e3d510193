"""Delivery: signed bodies, scope fan-out, retries, 410, resume after restart, records."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from circtoolkit import BadRequestError, CircularoClient, PermissionDeniedError, sign
from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, ORGANIZATIONS, Sandbox
from circtoolkit.sandbox.receiver import Receiver

from .conftest import ACME_ADMIN, GLOBAL_ADMIN, GLOBEX_ADMIN, SIGNER, FakeClock

SECRET = "Gh1!f5dFs0dA"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live(clock: FakeClock) -> Iterator[Sandbox]:
    """A sandbox with the fast retry schedule."""
    with Sandbox(clock=clock, retry_schedule=FAST_RETRY_SCHEDULE, delivery_timeout=2) as sb:
        yield sb


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as rx:
        yield rx


def test_a_notification_is_the_documented_json_signed_over_its_exact_bytes(
    live: Sandbox, receiver: Receiver
) -> None:
    client = live.client(ACME_ADMIN)
    client.create_webhook(receiver.url, hmac_secret=SECRET)
    document_id = client.create_document("NDA")["documentId"]
    live.wait_for_deliveries(10)
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.signature == sign(request.body, SECRET)
    assert request.verified
    payload = json.loads(request.body)
    assert list(payload) == ["documentId", "event", "actor", "timestamp"]
    assert payload["documentId"] == document_id
    assert payload["event"] == "documentCreated"
    assert payload["actor"] == ACME_ADMIN
    assert TIMESTAMP.fullmatch(payload["timestamp"])


def test_a_webhook_without_secret_gets_no_signature(live: Sandbox, receiver: Receiver) -> None:
    live.client(ACME_ADMIN).create_webhook(receiver.url)
    live.trigger("documentCompleted")
    live.wait_for_deliveries(10)
    [request] = receiver.requests
    assert request.signature is None
    assert "x-circularo-signature" not in request.headers


def test_non_ascii_actors_are_signed_as_sent(live: Sandbox, receiver: Receiver) -> None:
    live.client(ACME_ADMIN).create_webhook(receiver.url, hmac_secret="tajné-€")
    live.trigger("documentSigned", actor="jiří.novák@příklad.cz")
    live.wait_for_deliveries(10)
    [request] = receiver.requests
    assert json.loads(request.body)["actor"] == "jiří.novák@příklad.cz"
    assert request.signature == sign(request.body, "tajné-€")


def test_events_fan_out_to_every_covering_scope_and_no_other(live: Sandbox) -> None:
    with Receiver() as acme_rx, Receiver() as globex_rx, Receiver() as tenant_rx, \
            Receiver() as acme_by_admin_rx:
        live.client(ACME_ADMIN).create_webhook(acme_rx.url)
        live.client(GLOBEX_ADMIN).create_webhook(globex_rx.url)
        admin = live.client(GLOBAL_ADMIN)
        admin.create_webhook(tenant_rx.url, type="tenant")
        admin.create_webhook(acme_by_admin_rx.url, name="Acme")
        live.client(ACME_ADMIN).create_document("Acme's")
        live.client(GLOBEX_ADMIN).create_document("Globex's")
        live.trigger("documentCompleted", organization=None)  # a tenant-wide document
        live.wait_for_deliveries(10)

        def events(rx: Receiver) -> list[tuple[str, str]]:
            return sorted((json.loads(r.body)["event"], json.loads(r.body)["actor"])
                          for r in rx.requests)

        assert events(acme_rx) == events(acme_by_admin_rx) == [("documentCreated", ACME_ADMIN)]
        assert events(globex_rx) == [("documentCreated", GLOBEX_ADMIN)]
        assert events(tenant_rx) == [("documentCompleted", GLOBAL_ADMIN),
                                     ("documentCreated", ACME_ADMIN),
                                     ("documentCreated", GLOBEX_ADMIN)]


def test_failed_attempts_are_retried_until_delivered(live: Sandbox) -> None:
    with Receiver(SECRET, status=[500, 503, 429, 200]) as flaky:
        live.client(ACME_ADMIN).create_webhook(flaky.url, hmac_secret=SECRET)
        live.trigger("documentCompleted")
        live.wait_for_deliveries(10)
        assert [r.answered for r in flaky.requests] == [500, 503, 429, 200]
        assert len({r.body for r in flaky.requests}) == 1  # the same bytes every time
        assert all(r.verified for r in flaky.requests)
        attempts = live.deliveries()
    assert attempts["attempt"].tolist() == [1, 2, 3, 4]
    assert attempts["status_code"].tolist() == [500, 503, 429, 200]
    assert attempts["error"].tolist()[:3] == ["HTTP 500", "HTTP 503", "HTTP 429"]
    assert attempts["state"].astype(str).unique().tolist() == ["delivered"]
    gaps = attempts["attempted_at"].diff().dt.total_seconds().iloc[1:].tolist()
    assert all(gap >= 0.8 * delay for gap, delay in zip(gaps, FAST_RETRY_SCHEDULE, strict=False))


def test_timeouts_are_retried(clock: FakeClock) -> None:
    gate = threading.Event()
    with Receiver(hold=gate) as slow, Sandbox(clock=clock, retry_schedule=(0.05,) * 20,
                                              delivery_timeout=0.2) as live:
        live.client(ACME_ADMIN).create_webhook(slow.url)
        live.trigger("documentCompleted")
        slow.wait_for(2, timeout=10)
        gate.set()
        live.wait_for_deliveries(10)
        attempts = live.deliveries()
    assert attempts["state"].astype(str).iloc[-1] == "delivered"
    assert attempts["error"].iloc[0] == "timed out after 0.2 s"
    assert pd.isna(attempts["status_code"].iloc[0])
    assert attempts["status_code"].iloc[-1] == 200


def test_a_closed_port_is_retried_and_nothing_is_lost(clock: FakeClock) -> None:
    port = free_port()
    with Sandbox(clock=clock, retry_schedule=(0.1,) * 100) as live:
        live.client(ACME_ADMIN).create_webhook(f"http://127.0.0.1:{port}/webhook")
        sent = [live.trigger("documentSigned", actor=f"user{n}@acme.test") for n in range(20)]
        with pytest.raises(TimeoutError, match="20 deliveries still pending"):
            live.wait_for_deliveries(0.5)
        refused = live.deliveries()
        assert set(refused["error"]) == {"connection refused"}
        with Receiver(port=port) as late:
            live.wait_for_deliveries(10)
            received = {json.loads(r.body)["actor"] for r in late.requests}
        summary = live.deliveries(attempts=False)
    assert received == {payload["actor"] for payload in sent}
    assert summary["state"].astype(str).tolist() == ["delivered"] * 20
    assert (summary["attempts"] >= 2).all()


def test_retries_stop_after_the_schedule(clock: FakeClock) -> None:
    with Receiver(status=500) as broken, Sandbox(clock=clock, retry_schedule=(0.01, 0.02)) as live:
        live.client(ACME_ADMIN).create_webhook(broken.url)
        live.trigger("documentCompleted")
        live.wait_for_deliveries(10)
        assert len(broken.requests) == 3
        assert live.deliveries(attempts=False)["state"].astype(str).tolist() == ["failed"]


def test_410_gone_disables_the_webhook(live: Sandbox) -> None:
    with Receiver(status=410) as gone, Receiver() as alive:
        client = live.client(ACME_ADMIN)
        gone_hook = client.create_webhook(gone.url)
        client.create_webhook(alive.url)
        live.trigger("documentCreated")
        live.wait_for_deliveries(10)
        for _ in range(3):
            live.trigger("documentSigned")
        live.wait_for_deliveries(10)
        assert len(gone.requests) == 1
        assert len(alive.requests) == 4
        summary = live.deliveries(attempts=False)
    gone_rows = summary[summary["webhook_id"] == gone_hook.id]
    assert gone_rows["state"].astype(str).tolist() == ["gone"]


def test_deleting_a_webhook_cancels_its_pending_retries(clock: FakeClock) -> None:
    # retries an hour apart: settling must not wait for them
    with Receiver(status=500) as broken, Sandbox(clock=clock, retry_schedule=(3600,) * 5) as live:
        client = live.client(ACME_ADMIN)
        hook = client.create_webhook(broken.url)
        live.trigger("documentCompleted")
        broken.wait_for(1, timeout=10)
        for _ in range(100):  # the failed attempt is recorded, its retry an hour away
            if live.deliveries()["status_code"].tolist() == [500]:
                break
            threading.Event().wait(0.02)
        client.delete_webhook(hook)
        live.wait_for_deliveries(2)
        assert len(broken.requests) == 1
        assert live.deliveries(attempts=False)["state"].astype(str).tolist() == ["cancelled"]


def test_pending_deliveries_resume_after_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "sandbox.db"
    port = free_port()
    with Sandbox(db=db, clock=clock, retry_schedule=(0.1,) * 100) as first:
        first.client(ACME_ADMIN).create_webhook(f"http://127.0.0.1:{port}/webhook",
                                                hmac_secret=SECRET)
        first.simulate(documents=10, seed=7, organization="Acme", progress=False)
        expected = len(first.events())
        with pytest.raises(TimeoutError):
            first.wait_for_deliveries(0.3)
    with Receiver(SECRET, port=port) as late, Sandbox(db=db, clock=clock) as second:
        second.wait_for_deliveries(10)
        assert len(late.requests) == expected
        assert all(r.verified for r in late.requests)
        summary = second.deliveries(attempts=False)
    assert summary["state"].astype(str).unique().tolist() == ["delivered"]
    assert len(summary) == expected
    assert summary["attempts"].min() >= 2  # refused before the restart, delivered after


def test_trigger_endpoint_follows_scope_rules(live: Sandbox, receiver: Receiver) -> None:
    acme = live.client(ACME_ADMIN)
    acme.create_webhook(receiver.url)
    answer = acme._request("POST", "/sandbox/trigger", json_body={"event": "signRejected"})
    assert answer["event"] == "signRejected" and answer["deliveries"] == 1
    assert answer["actor"] == ACME_ADMIN
    with pytest.raises(BadRequestError) as other:
        acme._request("POST", "/sandbox/trigger",
                      json_body={"event": "signRejected", "organization": "Globex"})
    assert other.value.field == "organization"
    with pytest.raises(BadRequestError) as unknown:
        acme._request("POST", "/sandbox/trigger", json_body={"event": "documentPrinted"})
    assert unknown.value.field == "event"
    with pytest.raises(PermissionDeniedError):
        live.client(SIGNER)._request("POST", "/sandbox/trigger",
                                     json_body={"event": "signRejected"})
    with pytest.raises(ValueError, match="event must be one of"):
        live.trigger("documentPrinted")
    live.wait_for_deliveries(10)
    assert json.loads(receiver.requests[0].body)["event"] == "signRejected"


def test_deliveries_endpoint_shows_only_your_webhooks(live: Sandbox) -> None:
    with Receiver(status=[500]) as acme_rx, Receiver() as globex_rx:
        acme = live.client(ACME_ADMIN)
        acme.create_webhook(acme_rx.url)
        live.client(GLOBEX_ADMIN).create_webhook(globex_rx.url)
        live.trigger("documentCompleted", organization="Acme")
        live.trigger("documentCompleted", organization="Globex")
        live.wait_for_deliveries(10)
        mine = acme._request("GET", "/sandbox/deliveries")
        assert mine["total"] == 1
        [delivery] = mine["results"]
        assert delivery["callbackUrl"] == acme_rx.url
        assert delivery["state"] == "delivered"
        assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
        assert delivery["attempts"][0]["error"] == "HTTP 500"
        everything = live.client(GLOBAL_ADMIN)._request("GET", "/sandbox/deliveries")
        assert everything["total"] == 2
        page = live.client(GLOBAL_ADMIN)._request(
            "GET", "/sandbox/deliveries", params={"limit": "1", "after": str(delivery["seq"])})
        assert [d["callbackUrl"] for d in page["results"]] == [globex_rx.url]
        with pytest.raises(BadRequestError):
            acme._request("GET", "/sandbox/deliveries", params={"state": "lost"})
        with pytest.raises(PermissionDeniedError):
            live.client(SIGNER)._request("GET", "/sandbox/deliveries")


def test_deliveries_frame_has_typed_columns(live: Sandbox, receiver: Receiver) -> None:
    live.client(ACME_ADMIN).create_webhook(receiver.url)
    live.trigger("documentCompleted")
    live.wait_for_deliveries(10)
    frame = live.deliveries()
    assert list(frame.columns) == ["delivery_id", "webhook_id", "callback_url", "event",
                                   "document_id", "attempt", "attempted_at", "status_code",
                                   "latency_ms", "error", "state"]
    assert isinstance(frame["event"].dtype, pd.CategoricalDtype)
    assert str(frame["attempted_at"].dtype).endswith("UTC]")
    assert str(frame["status_code"].dtype) == "Int64"
    assert frame["latency_ms"].iloc[0] > 0
    summary = live.deliveries(attempts=False)
    assert list(summary.columns) == ["delivery_id", "webhook_id", "callback_url", "event",
                                     "document_id", "state", "attempts", "next_attempt_at"]
    assert pd.isna(summary["next_attempt_at"].iloc[0])


def test_organization_ids_are_what_webhooks_name(live: Sandbox) -> None:
    events = live.events()
    assert events.empty
    live.trigger("documentCreated", organization="Globex")
    assert live.events()["organization_id"].tolist() == [ORGANIZATIONS["Globex"]]


def test_the_api_and_deliveries_survive_a_hung_receiver(clock: FakeClock) -> None:
    gate = threading.Event()
    with Receiver(hold=gate) as hung, Sandbox(clock=clock) as live:
        client: CircularoClient = live.client(ACME_ADMIN)
        client.create_webhook(hung.url)
        live.trigger("documentCreated")
        hung.wait_for(1, timeout=10)
        assert requests.get(live.url + "/openapi.json", timeout=5).status_code == 200
        gate.set()
        live.wait_for_deliveries(10)


def test_a_connection_reset_while_idle_is_survived(live: Sandbox) -> None:
    """A receiver that resets idle keep-alive connections (as load balancers do): the
    next delivery notices the dead connection and opens a new one."""
    import asyncio
    import struct

    hits: list[int] = []
    port: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.1)
            except (TimeoutError, asyncio.IncompleteReadError):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.close()  # RST, not FIN
                return
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            hits.append(1)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port.append(server.sockets[0].getsockname()[1])
            while not stop.is_set():
                await asyncio.sleep(0.05)
            server.close()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    while not port:
        threading.Event().wait(0.01)
    live.client(ACME_ADMIN).create_webhook(f"http://127.0.0.1:{port[0]}/hook")
    try:
        for _ in range(3):
            live.trigger("documentSigned")
            live.wait_for_deliveries(5)
            threading.Event().wait(0.4)  # the receiver resets the idle connection meanwhile
        summary = live.deliveries(attempts=False)
    finally:
        stop.set()
        thread.join(5)
    assert summary["state"].astype(str).tolist() == ["delivered"] * 3
    assert len(hits) == 3


def test_a_response_delimited_by_closing_the_connection_counts(live: Sandbox) -> None:
    """HTTP/1.0-style answers without Content-Length (Python's http.server) are fine."""
    import http.server

    class OldStyle(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"thanks")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OldStyle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live.client(ACME_ADMIN).create_webhook(f"http://127.0.0.1:{server.server_port}/hook")
        live.trigger("documentSigned")
        live.trigger("documentCompleted")
        live.wait_for_deliveries(10)
        attempts = live.deliveries()
    finally:
        server.shutdown()
        server.server_close()
    assert attempts["status_code"].tolist() == [200, 200]
    assert attempts["attempt"].tolist() == [1, 1]


def test_deliveries_emitted_before_start_are_sent_once(clock: FakeClock) -> None:
    with Receiver() as rx:
        sandbox = Sandbox(clock=clock, retry_schedule=FAST_RETRY_SCHEDULE)
        admin = sandbox.state.login("admin@acme.test", "sandbox")
        assert admin  # a webhook and events before the sandbox serves or delivers
        from circtoolkit.sandbox.state import Principal

        principal = sandbox.state.authenticate(admin[0])
        assert isinstance(principal, Principal)
        sandbox.state.create_webhook(principal, {"type": "organization", "callbackUrl": rx.url})
        sandbox.trigger("documentCreated")
        sandbox.trigger("documentSigned")
        with sandbox:
            sandbox.wait_for_deliveries(10)
            assert len(rx.requests) == 2
            assert sandbox.engine.outstanding == 0


def test_api_keys_never_reach_the_sandbox_log(sandbox: Sandbox,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import logging

    client = sandbox.client(ACME_ADMIN)
    key = client.create_api_key()
    with caplog.at_level(logging.INFO, logger="circtoolkit.sandbox"):
        client.revoke_api_key(key)
        with pytest.raises(Exception, match="404"):
            client.revoke_api_key(key)
    lines = [record.getMessage() for record in caplog.records]
    assert any("/api/key/****" in line for line in lines)
    assert all(key.key not in line for line in lines)
