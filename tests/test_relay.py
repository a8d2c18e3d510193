"""The relay: channels, keys, byte-exact streaming, and listeners that lose nothing."""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from circtoolkit import ConfigurationError, sign
from circtoolkit.listener import Listener
from circtoolkit.relay import Relay, create_channel
from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, Sandbox

from .conftest import ACME_ADMIN
from .test_listener import payload

SECRET = "relay-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(inbox: str, body: bytes, secret: str = SECRET) -> requests.Response:
    return requests.post(inbox, data=body, timeout=5, headers={
        "Content-Type": "application/json", "x-circularo-signature": sign(body, secret)})


def first_messages(channel, count: int, after: int = 0) -> list[dict]:
    messages: list[dict] = []
    with requests.get(channel.stream, params={"after": after}, stream=True, timeout=5,
                      headers={"Authorization": f"Bearer {channel.read_key}"}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream"
        for line in answer.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                messages.append(json.loads(line[6:]))
                if len(messages) == count:
                    return messages
    return messages


def test_channels_are_unguessable_and_reading_needs_the_key() -> None:
    with Relay() as relay:
        one, two = relay.create_channel(), relay.create_channel()
        assert one.id != two.id and one.read_key != two.read_key
        assert re.fullmatch(r"[A-Za-z0-9_-]{24,}", one.id)
        assert len(one.read_key) >= 40
        assert one.read_key not in repr(one)
        assert requests.get(one.stream, timeout=5).status_code == 401
        wrong = requests.get(one.stream, timeout=5,
                             headers={"Authorization": f"Bearer {two.read_key}"})
        assert wrong.status_code == 403
        unknown = requests.get(relay.url + "/stream/nope", timeout=5,
                               headers={"Authorization": f"Bearer {one.read_key}"})
        assert unknown.status_code == 404
        assert send(relay.url + "/in/nope", payload()).status_code == 404
        big = requests.post(one.inbox, data=b"x" * (1024 * 1024 + 1), timeout=5)
        assert big.status_code == 413


def test_requests_are_relayed_byte_exact_and_in_order() -> None:
    with Relay() as relay:
        channel = relay.create_channel()
        bodies = [payload(1), b'{"odd":  "spacing" ,"\\u00e9":1}', bytes(range(256))]
        for body in bodies:
            answer = send(channel.inbox, body)
            assert answer.status_code == 202 and answer.json()["status"] == "relayed"
        messages = first_messages(channel, 3)
        assert [base64.b64decode(m["body"]) for m in messages] == bodies
        headers = dict(messages[0]["headers"])
        assert headers["x-circularo-signature"] == sign(bodies[0], SECRET)
        assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
        later = first_messages(channel, 1, after=messages[1]["seq"])
        assert base64.b64decode(later[0]["body"]) == bodies[2]


def test_a_listener_behind_a_relay_verifies_itself() -> None:
    with Relay() as relay:
        channel = relay.create_channel()
        with Listener(SECRET, relay=channel.listen_url) as listener:
            assert listener.url == channel.inbox
            send(channel.inbox, payload(1))
            send(channel.inbox, payload(2), secret="forged")
            send(channel.inbox, payload(1))  # a sender's retry
            listener.wait_for(1, timeout=10)
            for _ in range(100):
                if len(listener.requests) == 3:
                    break
                requests.get(relay.url + "/", timeout=5)
            kept = listener.requests
            assert kept["verdict"].tolist() == ["accepted", "rejected", "duplicate"]
            assert kept["reason"].iloc[1].startswith("signature does not match")
            assert listener.events["deliveries"].tolist() == [2]


def test_disconnect_and_reconnect_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with Relay() as relay:
        with Listener(SECRET, db=db, relay=relay.url) as first:
            inbox = first.url
            for n in range(5):
                send(inbox, payload(n))
            first.wait_for(5, timeout=10)
        for n in range(5, 12):  # the notebook is offline: the relay keeps them
            assert send(inbox, payload(n)).status_code == 202
        with Listener(SECRET, db=db, relay=relay.url) as second:
            assert second.url == inbox  # the same channel, remembered in the db
            second.wait_for(12, timeout=10)
            events = second.events
    assert events["documentId"].tolist() == [f"doc-{n}" for n in range(12)]
    assert (events["deliveries"] == 1).all()


def test_a_restarted_relay_is_reconnected_to(tmp_path: Path) -> None:
    port = free_port()
    relay_db = tmp_path / "relay.db"
    with Relay(port=port, db=relay_db) as relay:
        channel = relay.create_channel()
        listener = Listener(SECRET, relay=channel.listen_url).start()
        send(channel.inbox, payload(1))
        listener.wait_for(1, timeout=10)
    try:
        with Relay(port=port, db=relay_db):
            send(channel.inbox, payload(2))
            send(channel.inbox, payload(3))
            assert listener.wait_for(3, timeout=15) == 3
            assert listener.relay_connected
        assert listener.events["documentId"].tolist() == ["doc-1", "doc-2", "doc-3"]
    finally:
        listener.stop()


def test_a_wrong_relay_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="listen URL"):
        Listener(SECRET, relay="http://127.0.0.1:9/stream/abc")  # no read key


def test_simulation_through_the_sandbox_relay_matches_the_delivery_log() -> None:
    with Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
        channel = create_channel(sandbox.relay_url)
        with Listener(SECRET, relay=channel.listen_url) as listener:
            sandbox.client(ACME_ADMIN).create_webhook(listener.url, hmac_secret=SECRET)
            report = sandbox.simulate(documents=40, seed=8, organization="Acme",
                                      progress=False)
            sandbox.wait_for_deliveries(30)
            listener.wait_for(report.deliveries, timeout=20)
            events = listener.events
            sent = sandbox.events()
            delivered = sandbox.deliveries(attempts=False)
    assert len(events) == len(sent) == len(delivered) == report.deliveries
    assert sorted(zip(events["documentId"], events["event"].astype(str), events["actor"],
                      events["timestamp"], strict=True)) == sorted(
        zip(sent["document_id"], sent["event"].astype(str), sent["actor"], sent["timestamp"],
            strict=True))
    assert events["verified"].all()


def test_relay_command_starts_and_stops() -> None:
    process = subprocess.Popen([sys.executable, "-m", "circtoolkit", "relay", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = re.search(r"relay \S+ at (http://\S+)", process.stdout.readline()).group(1)
    try:
        channel = create_channel(url)
        assert send(channel.inbox, payload()).status_code == 202
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == "relay stopped"
