"""A small recording webhook receiver, for demos and tests of the delivery path.

It keeps every request it gets (raw body, headers, time), checks the signature when
given secrets, and can be told how to answer (``status`` as a fixed code, a list of
codes to play in order, or a function of the request number), and how long to wait
before answering (``delay``, or until ``hold`` is set). The toolkit's full receiver
is the Listener; this one exists so that the sandbox can show, and its tests can check,
what it sends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._server import BackgroundServer, ServedApp
from ..signing import SIGNATURE_HEADER, verify

__all__ = ["ReceivedRequest", "Receiver"]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as received: ``verified`` is None when the receiver has no secret."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    received_at: float
    answered: int
    verified: bool | None

    @property
    def signature(self) -> str | None:
        return self.headers.get(SIGNATURE_HEADER)


class Receiver(ServedApp):
    """Records webhook requests on a background server; ``url`` is its callback URL."""

    def __init__(self, secrets: str | Sequence[str] | None = None, *,
                 status: int | Sequence[int] | Callable[[int], int] = 200,
                 delay: float = 0.0, hold: threading.Event | None = None,
                 host: str = "127.0.0.1", port: int = 0, path: str = "/webhook") -> None:
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets or [])
        self.status = status
        self.delay = delay
        self.hold = hold
        self.path = path
        self.requests: list[ReceivedRequest] = []
        self._changed = threading.Condition()
        self._server = BackgroundServer(self._app, host=host, port=port,
                                        name="circtoolkit-receiver")

    def _answer_for(self, number: int) -> int:
        if callable(self.status):
            return self.status(number)
        if isinstance(self.status, int):
            return self.status
        codes = list(self.status)
        return codes[number] if number < len(codes) else 200

    async def _app(self, scope: dict[str, Any], receive: Callable[..., Any],
                   send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._changed:
            number = len(self.requests)
            status = self._answer_for(number)
            verified = (verify(body, headers.get(SIGNATURE_HEADER), self.secrets)
                        if self.secrets else None)
            self.requests.append(ReceivedRequest(scope["method"], scope["path"], body, headers,
                                                 time.time(), status, verified))
            self._changed.notify_all()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait, 30)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    @property
    def url(self) -> str:
        """The callback URL to register."""
        return self._server.root_url + self.path

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"received {len(self.requests)} of {count} requests "
                                       f"within {timeout:g} s")
                self._changed.wait(remaining)
            return list(self.requests)

    def accepted(self) -> Iterable[ReceivedRequest]:
        """The requests that were answered 2xx."""
        return [r for r in self.requests if 200 <= r.answered < 300]
