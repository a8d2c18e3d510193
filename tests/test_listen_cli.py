"""`circtoolkit listen`: callback URL, a line per request, secrets from the environment,
clean stops, and nothing answered 2xx lost to a kill -9 under load."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from circtoolkit import sign
from circtoolkit.store import EventStore

from .test_listener import payload

SECRET = "cli-secret"


def start_listen(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "circtoolkit", "listen", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"webhook callback URL (http://\S+)", first)
    assert match, first + process.stderr.read() if process.poll() is not None else first
    for line in process.stdout:
        if line.startswith("Press Ctrl-C"):
            break
    return process, match.group(1)


def signed_post(url: str, body: bytes, secret: str = SECRET) -> requests.Response:
    return requests.post(url, data=body, timeout=10, headers={
        "Content-Type": "application/json", "x-circularo-signature": sign(body, secret)})


def test_listen_prints_a_line_per_request_and_stops_cleanly(tmp_path: Path) -> None:
    process, url = start_listen("--db", str(tmp_path / "cli.db"),
                                env={"CIRCTOOLKIT_SECRET": "old-secret\n" + SECRET})
    try:
        assert signed_post(url, payload(1)).status_code == 200
        assert signed_post(url, payload(2), secret="old-secret").status_code == 200
        assert signed_post(url, payload(1)).status_code == 200
        assert signed_post(url, payload(3), secret="wrong").status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    assert any(re.search(r"200 documentSigned\s+doc-1\s+bob@acme.test\s+verified #1$", line)
               for line in lines), out
    assert any(line.endswith("#1  (again)") for line in lines)
    assert any("401 rejected: signature does not match" in line for line in lines)
    assert lines[-1] == "listener stopped; 2 events held"
    assert SECRET not in out + err and "old-secret" not in out + err
    with EventStore(tmp_path / "cli.db") as store:
        assert store.events["documentId"].tolist() == ["doc-1", "doc-2"]


def test_a_secret_on_the_command_line_and_sigint(tmp_path: Path) -> None:
    process, url = start_listen("--secret", SECRET, "--quiet")
    try:
        assert signed_post(url, payload(1)).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "documentSigned" not in out  # --quiet
    assert out.splitlines()[-1] == "listener stopped; 1 events held"


def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    process, url = start_listen("--db", str(db), "--secret", SECRET, "--quiet")
    acknowledged: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(worker: int) -> None:
        session = requests.Session()
        for n in range(100_000):
            if stop.is_set():
                return
            document = f"w{worker}-{n}"
            body = payload(0, documentId=document)
            try:
                answer = session.post(url, data=body, timeout=5, headers={
                    "Content-Type": "application/json",
                    "x-circularo-signature": sign(body, SECRET)})
            except requests.RequestException:
                return  # the listener died mid-request: not acknowledged
            if answer.status_code == 200:
                with lock:
                    acknowledged.add(document)

    with ThreadPoolExecutor(8) as pool:
        for worker in range(8):
            pool.submit(hammer, worker)
        while True:
            with lock:
                if len(acknowledged) >= 300:
                    break
            threading.Event().wait(0.01)
        process.kill()  # SIGKILL, under load
        process.wait(10)
        stop.set()
    assert process.returncode == -signal.SIGKILL
    with EventStore(db) as store:
        held = set(store.events["documentId"])
        requests_kept = store.requests
    assert acknowledged <= held, f"lost {len(acknowledged - held)} acknowledged events"
    assert len(held) >= 300
    assert (requests_kept["verdict"] == "accepted").sum() == len(held)
    # a restarted listener on the same file carries on from there
    process, url = start_listen("--db", str(db), "--secret", SECRET, "--quiet")
    try:
        assert signed_post(url, payload(0, documentId="after-restart")).status_code == 200
        first = sorted(acknowledged)[0]
        again = signed_post(url, payload(0, documentId=first))
        assert again.json()["status"] == "duplicate"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    with EventStore(db) as store:
        assert len(store.events) == len(held) + 1
