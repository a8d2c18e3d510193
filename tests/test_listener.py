"""The Listener over real HTTP: verification, every bad input, durability, hand-over."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import requests

from circtoolkit import ListenerError, sign
from circtoolkit.listener import Listener
from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, Sandbox
from circtoolkit.sandbox.receiver import Receiver
from circtoolkit.store import EventStore

from .conftest import ACME_ADMIN, FakeClock

SECRET = "Gh1!f5dFs0dA"
JSON = {"Content-Type": "application/json"}


def payload(n: int = 1, *, timestamp: str = "2023-07-19T12:30:00.152Z", **changes: object
            ) -> bytes:
    body = {"documentId": f"doc-{n}", "event": "documentSigned", "actor": "bob@acme.test",
            "timestamp": timestamp} | changes
    return json.dumps(body, separators=(",", ":")).encode()


def post(listener: Listener, body: bytes, *, secret: str | None = SECRET,
         headers: dict[str, str] | None = None) -> requests.Response:
    sent = dict(JSON)
    if secret is not None:
        sent["x-circularo-signature"] = sign(body, secret)
    sent.update(headers or {})
    return requests.post(listener.url, data=body, headers=sent, timeout=5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener(SECRET) as running:
        yield running


def last_request(listener: Listener) -> pd.Series:
    return listener.requests.iloc[-1]


def test_a_signed_notification_is_accepted_and_typed(listener: Listener) -> None:
    answer = post(listener, payload())
    assert answer.status_code == 200
    assert answer.json() == {"status": "accepted", "eventId": 1}
    events = listener.events
    assert list(events.columns) == ["event_id", "received_at", "timestamp", "event",
                                    "documentId", "actor", "verified", "deliveries"]
    row = events.iloc[0]
    assert (row.event_id, row.event, row.documentId, row.actor) == (
        1, "documentSigned", "doc-1", "bob@acme.test")
    assert row.timestamp == pd.Timestamp("2023-07-19T12:30:00.152Z")
    assert bool(row.verified) and row.deliveries == 1
    assert str(events["received_at"].dtype) == "datetime64[ns, UTC]"
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(events["event"].dtype, pd.CategoricalDtype)
    assert events["verified"].dtype == bool
    assert abs(row.received_at - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(minutes=1)


@pytest.mark.parametrize(
    ("secret", "headers", "reason"),
    [(None, {}, "missing x-circularo-signature header"),
     ("not-the-secret", {}, "signature does not match the body under any secret"),
     (None, {"x-circularo-signature": "sha256=abc"},
      "signature does not match the body under any secret")],
)
def test_missing_or_wrong_signatures_get_401_and_are_kept(
    listener: Listener, secret: str | None, headers: dict[str, str], reason: str
) -> None:
    answer = post(listener, payload(), secret=secret, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"status": "rejected", "reason": reason}
    kept = last_request(listener)
    assert (kept.status, kept.verdict, kept.reason) == (401, "rejected", reason)
    assert kept.body == payload()
    assert listener.events.empty
    assert post(listener, payload()).status_code == 200  # and it keeps serving


def test_signatures_are_checked_over_the_raw_bytes(listener: Listener) -> None:
    body = b'{"documentId": "d", "event": "documentSigned",  "actor": "a@b.c",' \
           b' "timestamp": "2023-07-19T12:30:00.152Z"}'
    assert post(listener, body).status_code == 200
    reserialised = json.dumps(json.loads(body)).encode()
    answer = requests.post(listener.url, data=reserialised,
                           headers=JSON | {"x-circularo-signature": sign(body, SECRET)}, timeout=5)
    assert answer.status_code == 401


def test_rotation_accepts_every_listed_secret() -> None:
    with Listener(["old-secret", "new-secret"]) as rotating:
        assert post(rotating, payload(1), secret="old-secret").status_code == 200
        assert post(rotating, payload(2), secret="new-secret").status_code == 200
        assert post(rotating, payload(3), secret="other").status_code == 401
        assert rotating.events["documentId"].tolist() == ["doc-1", "doc-2"]


def test_without_a_secret_events_are_accepted_unverified() -> None:
    with Listener() as open_listener:
        assert post(open_listener, payload(), secret=None).status_code == 200
        assert open_listener.events["verified"].tolist() == [False]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [(b"{not json", 400, "malformed JSON"),
     (b"\xff\xfe", 400, "malformed JSON"),
     (b"[1, 2]", 422, "the payload must be a JSON object"),
     (b'{"event": "documentSigned"}', 422,
      "payload missing field(s): documentId, actor, timestamp"),
     (payload(actor=7), 422, "field actor must be a non-empty string"),
     (payload(documentId=""), 422, "field documentId must be a non-empty string"),
     (payload(timestamp="yesterday"), 422, "timestamp is not an ISO 8601 time"),
     (payload(timestamp="2023-07-19T12:30:00"), 422, "timestamp is not an ISO 8601 time")],
)
def test_bad_payloads_get_precise_4xx(listener: Listener, body: bytes, status: int,
                                      reason: str) -> None:
    answer = post(listener, body)
    assert answer.status_code == status
    assert answer.json()["reason"].startswith(reason)
    kept = last_request(listener)
    assert kept.verdict == "rejected" and kept.reason.startswith(reason)
    assert kept.body == body
    assert post(listener, payload()).status_code == 200


def test_wrong_method_path_and_content_type(listener: Listener) -> None:
    get = requests.get(listener.url, timeout=5)
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    elsewhere = requests.post(listener.url + "other", data=payload(), timeout=5,
                              headers=JSON | {"x-circularo-signature": sign(payload(), SECRET)})
    assert elsewhere.status_code == 404
    text = post(listener, payload(), headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    with_charset = post(listener, payload(), headers={"Content-Type":
                                                      "application/json; charset=utf-8"})
    assert with_charset.status_code == 200
    verdicts = listener.requests[["status", "verdict"]].values.tolist()
    assert verdicts == [[405, "rejected"], [404, "rejected"], [415, "rejected"],
                        [200, "accepted"]]


def test_oversized_bodies_get_413() -> None:
    with Listener(SECRET, max_body=1000) as small:
        big = payload(actor="x" * 2000)
        assert post(small, big).status_code == 413
        streamed = requests.post(small.url, data=iter([big[:600], big[600:]]), timeout=5,
                                 headers=JSON | {"x-circularo-signature": sign(big, SECRET)})
        assert streamed.status_code == 413
        assert small.requests["status"].tolist() == [413, 413]
        assert "exceeds max_body (1000 bytes)" in small.requests["reason"].iloc[0]
        assert post(small, payload()).status_code == 200


def test_tolerance_rejects_old_and_future_timestamps(clock: FakeClock) -> None:
    now = datetime.fromtimestamp(clock.now, UTC)

    def stamp(offset: float) -> str:
        moment = now + pd.Timedelta(seconds=offset)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    with Listener(SECRET, tolerance=300, clock=clock) as strict:
        assert post(strict, payload(1, timestamp=stamp(-200))).status_code == 200
        assert post(strict, payload(2, timestamp=stamp(250))).status_code == 200
        old = post(strict, payload(3, timestamp=stamp(-400)))
        assert old.status_code == 400 and "old, outside the tolerance of 300 s" in old.text
        ahead = post(strict, payload(4, timestamp=stamp(400)))
        assert ahead.status_code == 400 and "ahead" in ahead.text
        assert strict.events["documentId"].tolist() == ["doc-1", "doc-2"]


def test_a_body_delivered_again_is_a_duplicate_not_a_new_event(listener: Listener) -> None:
    first = post(listener, payload())
    again = post(listener, payload())
    assert first.json() == {"status": "accepted", "eventId": 1}
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "eventId": 1}
    events = listener.events
    assert len(events) == 1 and events["deliveries"].tolist() == [2]
    assert listener.requests["verdict"].tolist() == ["accepted", "duplicate"]
    post(listener, payload(2))
    post(listener, payload())
    assert listener.events["deliveries"].tolist() == [3, 1]  # incremental reads see it


def test_events_survive_a_restart_on_the_same_db(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with Listener(SECRET, db=db) as first:
        for n in range(5):
            post(first, payload(n))
        post(first, payload(0))
        post(first, payload(9), secret="wrong")
    with Listener(SECRET, db=db) as second:
        assert second.wait_for(5, timeout=1) == 5
        post(second, payload(5))
        post(second, payload(1))  # a duplicate of one from before the restart
        events = second.events
    assert events["documentId"].tolist() == [f"doc-{n}" for n in range(6)]
    assert events["deliveries"].tolist() == [2, 2, 1, 1, 1, 1]
    with EventStore(db) as store:
        assert store.events.equals(events)
        assert store.counts() == {"accepted": 6, "duplicate": 2, "rejected": 1}


def test_wait_for_says_how_many_it_holds(listener: Listener) -> None:
    post(listener, payload())
    with pytest.raises(TimeoutError, match="holds 1 of 3 events"):
        listener.wait_for(3, timeout=0.2)


def test_wait_for_sees_events_that_arrived_before_it_was_called(listener: Listener) -> None:
    for n in range(3):
        post(listener, payload(n))
    assert listener.wait_for(3, timeout=0.01) == 3


def test_on_event_callbacks_run_in_order_and_their_errors_reach_the_caller(
    listener: Listener,
) -> None:
    seen: list[str] = []
    done = threading.Event()

    def record(event: dict) -> None:
        seen.append(event["documentId"])
        if len(seen) == 3:
            done.set()

    listener.on_event(record)
    for n in range(3):
        post(listener, payload(n))
    assert done.wait(5)
    assert seen == ["doc-0", "doc-1", "doc-2"]

    called = threading.Event()

    def broken(event: dict) -> None:
        called.set()
        raise RuntimeError("callback bug")

    unsubscribe = listener.on_event(broken)
    post(listener, payload(3))
    assert called.wait(5)
    with pytest.raises(ListenerError, match="callback bug"):
        for _ in range(100):  # the error is handed over just after the callback returns
            listener.wait_for(0)
            threading.Event().wait(0.01)
    unsubscribe()
    assert post(listener, payload(4)).status_code == 200  # the listener keeps serving
    assert listener.wait_for(5, timeout=5) == 5


def test_a_failed_write_answers_503_and_reaches_the_caller(tmp_path: Path) -> None:
    import os

    with Listener(SECRET, db=tmp_path / "events.db") as failing:
        assert post(failing, payload(1)).status_code == 200
        journal = failing._writer._journal
        assert journal is not None
        os.close(journal.fd)  # the disk goes away: writes now fail
        journal.fd = os.open(os.devnull, os.O_RDONLY)
        answer = post(failing, payload(2))
        assert answer.status_code == 503
        assert answer.json() == {"status": "error", "reason": "storage failed"}
        with pytest.raises(ListenerError, match="Bad file descriptor"):
            failing.wait_for(0)
    with EventStore(tmp_path / "events.db") as store:  # what was acknowledged is there
        assert store.events["documentId"].tolist() == ["doc-1"]


def test_a_failed_indexing_reaches_the_caller(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    failing = Listener(SECRET, db=db).start()
    with sqlite3.connect(db) as other:
        other.execute("DROP TABLE requests")
    assert post(failing, payload(1)).status_code == 200  # kept in the journal
    with pytest.raises(ListenerError, match="requests"):
        for _ in range(100):
            failing.wait_for(0)
            threading.Event().wait(0.02)
    with pytest.raises(ListenerError, match="requests"):
        failing.stop()  # the journal keeps the request for the next opening
    assert not failing.is_running


def test_forward_passes_the_original_request_on(listener: Listener) -> None:
    with Receiver(SECRET) as app, Listener(SECRET, forward_to=app.url) as forwarding:
        body = payload(1)
        post(forwarding, body)
        post(forwarding, body)  # a duplicate is not forwarded twice
        post(forwarding, payload(2), secret="wrong")  # nor is a rejected request
        app.wait_for(1, timeout=5)
        forwarding.wait_for(1)
        for _ in range(50):
            if len(forwarding.forwards):
                break
            threading.Event().wait(0.05)
        [received] = app.requests
        assert received.body == body
        assert received.signature == sign(body, SECRET)
        assert received.verified
        forwards = forwarding.forwards
        assert forwards[["event_id", "status"]].values.tolist() == [[1, 200]]
        assert forwards["target"].tolist() == [app.url]


def test_replay_sends_stored_events_again(listener: Listener) -> None:
    for n in range(3):
        post(listener, payload(n))
    with Receiver(SECRET) as app:
        one = listener.replay(2, to=app.url)
        assert one[["event_id", "status"]].values.tolist() == [[2, 200]]
        events = listener.events
        several = listener.replay(events[events["documentId"] != "doc-1"], to=app.url)
        assert several["event_id"].tolist() == [1, 3]
        assert [r.body for r in app.requests] == [payload(1), payload(0), payload(2)]
        assert all(r.verified for r in app.requests)
    refused = listener.replay(1, to="http://127.0.0.1:9/nowhere")
    assert pd.isna(refused["status"].iloc[0]) and refused["error"].iloc[0] == "ConnectionError"
    with pytest.raises(KeyError):
        listener.replay(99, to="http://127.0.0.1:9/nowhere")


def test_a_simulation_matches_the_sandbox_delivery_log_one_to_one() -> None:
    with Listener(SECRET) as received, Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
        sandbox.client(ACME_ADMIN).create_webhook(received.url, hmac_secret=SECRET)
        report = sandbox.simulate(documents=60, seed=4, organization="Acme", progress=False)
        sandbox.wait_for_deliveries(30)
        received.wait_for(report.deliveries, timeout=10)
        events = received.events
        log = sandbox.deliveries(attempts=False).merge(
            sandbox.events()[["document_id", "event", "actor", "timestamp"]].assign(
                event=lambda f: f["event"].astype(str)),
            left_on=["document_id", "event"], right_on=["document_id", "event"], how="left")
        sent = sandbox.events()
    assert len(events) == report.deliveries == len(sent)
    mine = sorted(zip(events["documentId"], events["event"].astype(str), events["actor"],
                      events["timestamp"], strict=True))
    theirs = sorted(zip(sent["document_id"], sent["event"].astype(str), sent["actor"],
                        sent["timestamp"], strict=True))
    assert mine == theirs
    assert events["verified"].all() and (events["deliveries"] == 1).all()
    assert len(log) >= len(sent)


def test_ngrok_without_pyngrok_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def without_pyngrok(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("pyngrok"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pyngrok)
    listener = Listener(SECRET, ngrok=True)
    with pytest.raises(Exception, match="pip install 'circtoolkit\\[ngrok\\]'"):
        listener.start()
    assert not listener.is_running


def raw_exchange(listener: Listener, data: bytes, *, wait_for: int = 1) -> bytes:
    """Send raw bytes on one connection; read until ``wait_for`` answers or the close."""
    import socket

    host, port = listener.local_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < wait_for:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def request_bytes(body: bytes, *, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (b"POST / " + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-circularo-signature: " + sign(body, SECRET).encode() + b"\r\n"
            b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


def test_pipelined_requests_are_answered_in_order(listener: Listener) -> None:
    answers = raw_exchange(listener, request_bytes(payload(1)) + request_bytes(payload(2))
                           + request_bytes(payload(1)), wait_for=3)
    assert answers.count(b"HTTP/1.1 200 OK") == 3
    assert answers.index(b'"eventId": 1}') < answers.index(b'"eventId": 2}')
    assert answers.rstrip().endswith(b'{"status": "duplicate", "eventId": 1}')


def test_expect_100_continue_and_http_1_0(listener: Listener) -> None:
    import socket

    body = payload(1)
    head = request_bytes(body, extra=b"Expect: 100-continue\r\n")[: -len(body)]
    host, port = listener.local_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert b"200 OK" in sock.recv(1024)
    old = raw_exchange(listener, request_bytes(payload(2), version=b"HTTP/1.0"))
    assert b"200 OK" in old and b"Connection: close" in old


def test_garbage_is_answered_400_and_the_listener_keeps_serving(listener: Listener) -> None:
    answer = raw_exchange(listener, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"malformed HTTP" in answer
    assert post(listener, payload()).status_code == 200


def test_an_unreadable_request_is_answered_after_the_ones_owed(listener: Listener) -> None:
    answers = raw_exchange(listener, request_bytes(payload(1)) + b"NOT HTTP\r\n\r\n",
                           wait_for=2)
    assert answers.index(b"HTTP/1.1 200 OK") < answers.index(b"HTTP/1.1 400 Bad Request")
    assert listener.events["documentId"].tolist() == ["doc-1"]


def test_nothing_after_a_connection_close_request_is_read(listener: Listener) -> None:
    first = request_bytes(payload(1), extra=b"Connection: close\r\n")
    answers = raw_exchange(listener, first + request_bytes(payload(2)), wait_for=2)
    assert answers.count(b"HTTP/1.1 ") == 1
    assert b"200 OK" in answers and b"Connection: close" in answers
    assert listener.requests["body"].tolist() == [payload(1)]


def test_deeply_nested_json_and_impossible_timestamps_are_rejected(listener: Listener) -> None:
    nested = post(listener, b"[" * 100_000 + b"]" * 100_000)
    assert nested.status_code == 400 and "nested too deeply" in nested.text
    far = post(listener, payload(timestamp="9999-12-31T00:00:00+00:00"))
    assert far.status_code == 422 and "timestamp" in far.text
    assert post(listener, payload()).status_code == 200


def test_a_stopped_listener_does_not_start_again(tmp_path: Path) -> None:
    listener = Listener(SECRET, db=tmp_path / "events.db").start()
    listener.stop()
    with pytest.raises(ListenerError, match="create a new one"):
        listener.start()


def test_changing_a_returned_frame_changes_nothing_stored(listener: Listener) -> None:
    post(listener, payload(1))
    frame = listener.events
    frame["mine"] = 1
    del frame["actor"]
    again = listener.events
    assert list(again["documentId"]) == ["doc-1"]
    assert "mine" not in again.columns and "actor" in again.columns


def test_the_relay_cursor_waits_for_a_stored_answer() -> None:
    from circtoolkit.relay import Relay, RelayClient
    from circtoolkit.sandbox.receiver import Receiver

    saved: list[int] = []
    with Relay() as relay, Receiver(status=[503, 503, 200]) as busy:
        channel = relay.create_channel()
        client = RelayClient(channel.listen_url, busy.url, load_cursor=lambda _: 0,
                             save_cursor=lambda _, seq: saved.append(seq), retry_delay=0.01)
        client.start()
        try:
            requests.post(channel.inbox, data=payload(), timeout=5,
                          headers={"Content-Type": "application/json"})
            busy.wait_for(3, timeout=10)
            for _ in range(100):
                if saved:
                    break
                threading.Event().wait(0.02)
        finally:
            client.stop()
    assert [r.answered for r in busy.requests] == [503, 503, 200]
    assert saved == [1]
