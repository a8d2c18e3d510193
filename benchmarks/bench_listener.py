"""Listener ingest under wrk, side by side with a bare uvicorn app, and DataFrame reads.

1. Ingest: `circtoolkit listen --db` (verifies every signature, parses, checks fields,
   de-duplicates, commits to SQLite before answering) and, in the same run, a bare raw
   ASGI app on uvicorn that only answers 200. Each server is pinned to core 0; wrk
   (Debian package) is pinned to core 1 with 32 connections, sending distinct signed
   notifications. Reports events/s, p50/p99 and the ratio. Target: >= 0.75, p99 <= 10 ms.
2. Reads: `EventStore(path).events` over 1,000,000 stored (indexed) events against
   `pandas.DataFrame` over the same 1,000,000 dicts, and the refresh after 1,000 more,
   which includes indexing them from the journal (target: no slower than pandas;
   refresh under 50 ms).

    .venv/bin/python benchmarks/bench_listener.py [--seconds 8] [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from circtoolkit.signing import sign
from circtoolkit.store import EventStore, PendingRequest, encode_headers

SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parent.parent
EVENTS = ("documentCreated", "signRequest", "documentSigned", "documentCompleted")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notification(n: int) -> dict[str, str]:
    return {"documentId": f"{n // 6:08x}-9d65-472d-8d85-90bcefbac3f7",
            "event": EVENTS[n % len(EVENTS)], "actor": f"user{n % 97}@acme.test",
            "timestamp": "2026-11-30T12:30:00.152Z"}


def wrk_script(folder: Path, count: int) -> Path:
    """A wrk Lua script that sends ``count`` distinct signed notifications in turn (read
    from a data file: a table literal that large overflows LuaJIT's constants)."""
    data = folder / "notifications.tsv"
    with data.open("w") as out:
        for n in range(count):
            body = json.dumps(notification(n), separators=(",", ":"))
            out.write(f"{sign(body.encode(), SECRET)}\t{body}\n")
    script = folder / "notifications.lua"
    script.write_text("\n".join([
        "local e = {}",
        f'for line in io.lines("{data}") do',
        '  local tab = string.find(line, "\t", 1, true)',
        "  e[#e + 1] = {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)}",
        "end",
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  local item = e[(i - 1) % #e + 1]",
        '  return wrk.format("POST", "/", {["Content-Type"] = "application/json",'
        ' ["x-circularo-signature"] = item[1]}, item[2])',
        "end"]))
    return script


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def run_wrk(port: int, script: Path, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s",
         str(script), f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
        check=True).stdout

    def millis(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": millis("50%"), "p99": millis("99%"),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)",
                                                          out)) else 0}


def serve(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["taskset", "-c", "0", *command], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wait_for_port(port)
    return process


def ingest(seconds: int, folder: Path) -> None:
    script = wrk_script(folder, 40_000 * seconds)
    db = folder / "ingest.db"
    port = free_port()
    listener = serve([sys.executable, "-m", "circtoolkit", "listen", "--port", str(port),
                      "--db", str(db), "--secret", SECRET, "--quiet"], port)
    try:
        ours = run_wrk(port, script, seconds)
    finally:
        listener.terminate()
        listener.wait(20)
    with EventStore(db) as store:
        counts = store.counts()
    port = free_port()
    bare = serve([sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port",
                  str(port), "--no-access-log", "--log-level", "warning"], port)
    try:
        theirs = run_wrk(port, script, seconds)
    finally:
        bare.terminate()
        bare.wait(20)
    print(f"ingest, wrk -t1 -c32 -d{seconds}s, servers on core 0, wrk on core 1:")
    for name, result in (("circtoolkit listen --db", ours), ("bare uvicorn raw ASGI", theirs)):
        print(f"  {name:<25} {result['rate']:>9,.0f} req/s   p50 {result['p50']:.2f} ms"
              f"   p99 {result['p99']:.2f} ms")
    print(f"  ratio {ours['rate'] / theirs['rate']:.2f} (target >= 0.75), p99 "
          f"{ours['p99']:.2f} ms (target <= 10 ms)")
    print(f"  stored: {counts['accepted']:,} events + {counts['duplicate']:,} duplicates = "
          f"{counts['accepted'] + counts['duplicate']:,} of {ours['requests']:,} requests "
          f"(non-2xx: {ours['non2xx']})")


def reads(count: int, folder: Path) -> None:
    db = folder / "reads.db"
    store = EventStore(db)
    writer = store.writer()
    headers = encode_headers([(b"content-type", b"application/json")])
    dicts = []

    def add(n: int) -> None:
        item = notification(n)
        body = json.dumps(item, separators=(",", ":")).encode()
        writer.add(PendingRequest(time.time_ns(), "POST", "/", 200, "accepted", None, headers,
                                  body, len(body), (1_796_000_000_000 + n, item["event"],
                                                    item["documentId"], item["actor"], True)))
        if writer.staged >= 5000:
            writer.commit()

    for n in range(count):
        add(n)
        dicts.append({"event_id": n + 1, "documentId": notification(n)["documentId"],
                      "event": notification(n)["event"], "actor": notification(n)["actor"],
                      "timestamp": "2026-11-30T12:30:00.152Z", "verified": True})
    writer.commit()
    writer.index()  # what an idle listener does on its own: the reads below start from SQLite
    started = time.perf_counter()
    baseline = pd.DataFrame(dicts)
    pandas_s = time.perf_counter() - started
    reader = EventStore(db)
    started = time.perf_counter()
    frame = reader.events
    cold_s = time.perf_counter() - started
    assert len(frame) == len(baseline) == count
    for n in range(count, count + 1000):
        add(n)
    writer.commit()
    started = time.perf_counter()
    frame = reader.events
    refresh_s = time.perf_counter() - started
    assert len(frame) == count + 1000
    print(f"reads of {count:,} stored events:")
    print(f"  EventStore(path).events, cold     {cold_s:>7.3f} s")
    print(f"  pandas.DataFrame({count:,} dicts)  {pandas_s:>7.3f} s   ratio "
          f"{cold_s / pandas_s:.2f} (target <= 1)")
    print(f"  refresh after 1,000 new events    {refresh_s * 1000:>7.1f} ms (target < 50 ms)")
    writer.close()
    reader.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.skip_ingest:
        sys.exit("wrk is not installed: apt-get install wrk (or --skip-ingest)")
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_ingest:
            ingest(args.seconds, Path(folder))
        reads(args.events, Path(folder))


if __name__ == "__main__":
    main()
