"""Webhook delivery throughput, side by side with aiohttp and requests, and the 10,000-
document simulation end to end.

The receiver (benchmarks/receiver_app.py: raw ASGI on uvicorn, verifies every signature)
runs in its own process pinned to core 1; this process is pinned to core 0.

1. Deliveries per second: the same N signed notifications sent by
   - the sandbox's delivery engine (resuming N pending deliveries from a SQLite file, so
     every attempt is also recorded),
   - aiohttp with the same 32 keep-alive connections (nothing recorded),
   - requests.Session, one at a time (nothing recorded; a tenth of N).
2. simulate(documents=10,000) with one signed webhook: seconds until every delivery is
   done. Target: under 10 s.

    .venv/bin/python benchmarks/bench_delivery.py [--deliveries 30000] [--documents 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import requests

from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, Sandbox
from circtoolkit.signing import SIGNATURE_HEADER

SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ReceiverProcess:
    def __init__(self) -> None:
        self.port = free_port()
        env = dict(os.environ, BENCH_SECRET=SECRET, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-m", "uvicorn", "benchmarks.receiver_app:app",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"], env=env)
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        deadline = time.monotonic() + 20
        while True:
            try:
                self.counts()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as answer:
            return json.load(answer)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def produce(db: str, url: str, documents: int) -> list[tuple[bytes, str]]:
    """Pending deliveries in ``db`` (the engine held back); returns (body, signature)."""
    sandbox = Sandbox(db=db, retry_schedule=FAST_RETRY_SCHEDULE)
    sandbox.engine.start = lambda: None  # type: ignore[method-assign] - produce only
    sandbox.engine.submit = lambda jobs: None  # type: ignore[method-assign]
    sandbox.start()
    sandbox.client("admin@acme.test").create_webhook(url, hmac_secret=SECRET)
    sandbox.simulate(documents=documents, seed=1, organization="Acme", progress=False)
    with sandbox.state.lock:
        rows = sandbox.state.db.execute("SELECT body, signature FROM deliveries").fetchall()
    sandbox.stop()
    return [(bytes(body), signature) for body, signature in rows]


def engine_rate(db: str, count: int) -> float:
    started = time.perf_counter()
    with Sandbox(db=db, retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
        sandbox.wait_for_deliveries(300)
        elapsed = time.perf_counter() - started
        states = sandbox.deliveries(attempts=False)["state"].astype(str).value_counts()
    assert states.get("delivered") == count, states
    return count / elapsed


def aiohttp_rate(url: str, deliveries: list[tuple[bytes, str]]) -> float:
    import aiohttp

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=connector) as session:
            queue = list(reversed(deliveries))

            async def worker() -> None:
                while queue:
                    body, signature = queue.pop()
                    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
                    async with session.post(url, data=body, headers=headers) as answer:
                        await answer.read()
                        assert answer.status == 200

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(32)))
            return len(deliveries) / (time.perf_counter() - started)

    import uvloop

    return uvloop.run(run())


def requests_rate(url: str, deliveries: list[tuple[bytes, str]]) -> float:
    session = requests.Session()
    started = time.perf_counter()
    for body, signature in deliveries:
        answer = session.post(url, data=body, timeout=10,
                              headers={"Content-Type": "application/json",
                                       SIGNATURE_HEADER: signature})
        assert answer.status_code == 200
    return len(deliveries) / (time.perf_counter() - started)


def simulate_end_to_end(url: str, documents: int) -> tuple[float, float, int]:
    with Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
        sandbox.client("admin@acme.test").create_webhook(url, hmac_secret=SECRET)
        started = time.perf_counter()
        report = sandbox.simulate(documents=documents, seed=1, organization="Acme",
                                  progress=False)
        simulated = time.perf_counter() - started
        sandbox.wait_for_deliveries(300)
        done = time.perf_counter() - started
        states = sandbox.deliveries(attempts=False)["state"].astype(str).value_counts()
    assert states.get("delivered") == report.deliveries, states
    return simulated, done, report.deliveries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=30000,
                        help="about how many deliveries for the rate comparison")
    parser.add_argument("--documents", type=int, default=10000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    receiver = ReceiverProcess()
    try:
        with tempfile.TemporaryDirectory() as folder:
            db = str(Path(folder) / "bench.db")
            deliveries = produce(db, receiver.url, max(1, args.deliveries // 6))
            count = len(deliveries)
            before = receiver.counts()["verified"]
            ours = engine_rate(db, count)
            assert receiver.counts()["verified"] - before == count
        theirs = aiohttp_rate(receiver.url, deliveries)
        sequential = requests_rate(receiver.url, deliveries[: count // 10])
        print(f"deliveries per second, {count} signed notifications, receiver on core 1:")
        print(f"  circtoolkit engine (recorded) {ours:>9,.0f}/s")
        print(f"  aiohttp, 32 connections       {theirs:>9,.0f}/s   ratio {ours / theirs:.2f}")
        print(f"  requests, sequential          {sequential:>9,.0f}/s   ratio "
              f"{ours / sequential:.2f}")
        before = receiver.counts()["verified"]
        simulated, done, total = simulate_end_to_end(receiver.url, args.documents)
        verified = receiver.counts()["verified"] - before
        print(f"simulate({args.documents:,} documents): {total:,} deliveries, {verified:,} "
              f"verified by the receiver")
        print(f"  simulation done after {simulated:.2f} s, every delivery done after "
              f"{done:.2f} s (target < 10 s: {'met' if done < 10 else 'MISSED'})")
    finally:
        receiver.close()


if __name__ == "__main__":
    main()
