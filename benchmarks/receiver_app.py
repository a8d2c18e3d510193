"""A bare raw-ASGI webhook receiver for benchmarks: verifies the signature, counts.

    uvicorn benchmarks.receiver_app:app   (secret from BENCH_SECRET, default "bench-secret")

GET answers the counts as JSON: {"received": n, "verified": n}.
"""

from __future__ import annotations

import json
import os

from circtoolkit.signing import verify

SECRET = os.environ.get("BENCH_SECRET", "bench-secret")
counts = {"received": 0, "verified": 0}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        answer = json.dumps(counts).encode()
    else:
        counts["received"] += 1
        signature = next((v for k, v in scope["headers"] if k == b"x-circularo-signature"), None)
        if signature is not None and verify(body, signature, SECRET):
            counts["verified"] += 1
        answer = b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})
