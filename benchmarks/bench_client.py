"""CircularoClient overhead against bare requests, side by side in one run.

Both sides call GET /webhooks (10 webhooks listed) on the same in-process sandbox over
loopback through a kept-alive requests.Session; the client adds URL building, redaction,
error mapping and model parsing. Also times sign/verify against bare hmac.

    .venv/bin/python benchmarks/bench_client.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import time
from collections.abc import Callable

import requests

from circtoolkit import Sandbox, sign, verify


def per_call(fn: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """Median over rounds of the mean seconds per call."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - started) / calls)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls

    with Sandbox() as sandbox:
        client = sandbox.client("admin@acme.test")
        for n in range(10):
            client.create_webhook(f"https://hooks.example/{n}", hmac_secret=f"secret-{n}")
        session = requests.Session()
        url, params = sandbox.url + "/webhooks", {"token": client.token}

        def bare() -> object:
            response = session.get(url, params=params, timeout=10)
            response.raise_for_status()
            return response.json()

        bare_s = per_call(bare, calls // 5)
        ours_s = per_call(client.list_webhooks, calls // 5)

    body = b'{"documentId":"e2461c31-9d65-472d-8d85-90bcefbac3f7","event":"documentCompleted",' \
           b'"actor":"john.smith@example.com","timestamp":"2023-07-19T12:30:00.152Z"}'
    signature = sign(body, "Gh1!f5dFs0dA")
    key = b"Gh1!f5dFs0dA"

    def bare_verify() -> bool:
        return hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), signature)

    bare_v = per_call(bare_verify, calls * 50)
    ours_v = per_call(lambda: verify(body, signature, "Gh1!f5dFs0dA"), calls * 50)

    print(f"{'':28}{'bare':>12}{'circtoolkit':>14}{'ratio':>8}")
    print(f"{'GET /webhooks (10 hooks)':28}{bare_s * 1e3:>10.3f}ms{ours_s * 1e3:>12.3f}ms"
          f"{ours_s / bare_s:>8.2f}")
    print(f"{'verify one signature':28}{bare_v * 1e6:>10.2f}us{ours_v * 1e6:>12.2f}us"
          f"{ours_v / bare_v:>8.2f}")


if __name__ == "__main__":
    main()
