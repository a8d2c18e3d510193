"""Listener: receive Circularo notifications in the background, verify, keep, hand over.

``Listener`` serves on a background thread with a lean HTTP/1.1 server of its own
(``_ingest.IngestServer``: httptools on uvloop). Each request is judged (path, method, content type,
size, signature over the raw bytes, JSON, fields, optional timestamp tolerance),
recorded in the EventStore, and answered only once its batch is committed: requests
that arrive together share one transaction (group commit), so durability costs one
commit per batch rather than per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import requests as http

from ._http1 import TRANSPORT_ERRORS, Connection, describe, request_head
from ._ingest import IngestServer, Request
from ._server import Service
from .errors import ConfigurationError, ListenerError
from .relay import RelayClient, create_channel, parse_listen_url
from .signing import SIGNATURE_HEADER, Verifier
from .store import EventStore, PendingRequest, encode_headers

__all__ = ["DEFAULT_MAX_BODY", "Listener", "ListenerError"]

DEFAULT_MAX_BODY = 1024 * 1024
COMMIT_WINDOW = 0.0005
FIELDS = ("documentId", "event", "actor", "timestamp")
_HOP_BY_HOP = frozenset({b"host", b"content-length", b"connection", b"transfer-encoding",
                         b"keep-alive", b"upgrade", b"te", b"trailer"})
_SIGNATURE = SIGNATURE_HEADER.encode()

log = logging.getLogger("circtoolkit.listener")


class _Verdict(Exception):
    """A request rejected: the status to answer and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Listener(Service):
    """Receives webhook notifications on a background thread and keeps every request.

    ``secret`` (one, several for rotation, or None to accept unsigned notifications as
    unverified); ``db`` a SQLite file that survives restarts (None: in memory);
    ``forward_to`` a URL that each accepted notification is passed on to, with its
    original body and headers; ``max_body`` the largest body accepted (413 above);
    ``tolerance`` seconds by which a notification's ``timestamp`` may differ from now
    (replay protection; None: any); ``relay`` a relay to receive through, for a machine
    with no public address: a relay's root URL (a channel is made there and remembered
    in ``db``) or a channel's listen URL (see ``circtoolkit.relay``); ``ngrok=True`` a
    public URL through ngrok instead (the ``ngrok`` extra: pyngrok).
    ``url`` is the callback URL to register.
    """

    def __init__(self, secret: str | Iterable[str] | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, path: str = "/", db: str | Path | None = None,
                 forward_to: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 tolerance: float | None = None, relay: str | None = None,
                 ngrok: bool = False, clock: Callable[[], float] = time.time) -> None:
        self._verifier = None if secret is None else Verifier(secret)
        if not path.startswith("/"):
            raise ConfigurationError("path must start with '/'")
        if max_body < 1:
            raise ConfigurationError("max_body must be >= 1")
        if tolerance is not None and tolerance <= 0:
            raise ConfigurationError("tolerance must be > 0 seconds")
        if forward_to is not None:
            try:
                request_head(forward_to)
            except ValueError as exc:
                raise ConfigurationError(f"forward_to: {exc}") from None
        self.path = path
        self.max_body = max_body
        self.tolerance = tolerance
        self.forward_to = forward_to
        if relay is not None and ngrok:
            raise ConfigurationError("choose a relay or ngrok, not both")
        self.store = EventStore(db)
        if relay is not None and "/stream/" not in relay:
            # a relay's root URL: this store's channel there (made once, then remembered)
            relay = self.store.relay_channel(relay.rstrip("/"),
                                             lambda root: create_channel(root).listen_url)
        if relay is not None:
            parse_listen_url(relay)  # a clear error now rather than in a thread later
        self._relay = relay
        self.ngrok = ngrok
        self._public_url: str | None = None
        self._relay_client: RelayClient | None = None
        self.clock = clock
        self._writer = self.store.writer()
        self._server = IngestServer(self._handle, host=host, port=port, max_body=max_body,
                                    on_loop=self._on_loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[PendingRequest, Request]] = []
        self._held = threading.Condition()
        self._events = self.store.counts()["accepted"]
        self._callbacks: list[Callable[[dict[str, Any]], object]] = []
        self._request_callbacks: list[Callable[[dict[str, Any]], object]] = []
        self._dispatch: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = \
            queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._forwards: asyncio.Queue[PendingRequest] | None = None
        self._error: BaseException | None = None
        self._started = False
        self._stopped = False
        self._verdicts = {"accepted": 0, "duplicate": 0, "rejected": 0}

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Listener:
        """Start serving in the background; returns at once, ready for requests."""
        self._check()
        if self._started:
            raise ListenerError("this listener is already running")
        if self._stopped:
            raise ListenerError("a stopped listener cannot start again: create a new one "
                                "(on the same db, it carries on where this one stopped)")
        self._dispatcher = threading.Thread(target=self._run_callbacks, daemon=True,
                                            name="circtoolkit-listener-callbacks")
        self._dispatcher.start()
        self._server.start()
        self._started = True
        if self.ngrok:
            try:
                self._public_url = _open_ngrok(self._server.port) + self.path
            except BaseException:
                self.stop()
                raise
        if self._relay is not None:
            self._relay_client = RelayClient(
                self._relay, self.local_url, load_cursor=self.store.relay_cursor,
                save_cursor=self.store.save_relay_cursor, on_error=self._relay_failed)
            self._relay_client.start()
        return self

    def _relay_failed(self, error: BaseException) -> None:
        self._error = error

    @property
    def relay_connected(self) -> bool:
        """Whether the relay stream is connected (False without a relay)."""
        return self._relay_client is not None and self._relay_client.connected.is_set()

    def stop(self) -> None:
        """Stop serving (what was answered 2xx is stored) and re-raise a thread's error."""
        if self._started:
            self._stopped = True
            if self._relay_client is not None:
                self._relay_client.stop()
                self._relay_client = None
            if self._public_url is not None:
                _close_ngrok(self._public_url[: -len(self.path)] if self.path != "/"
                             else self._public_url.rstrip("/"))
                self._public_url = None
            self._server.stop()
            self._dispatch.put(None)
            if self._dispatcher is not None:
                self._dispatcher.join(10)
            self._started = False
            try:
                self._writer.close()
            except Exception as exc:
                self._error = self._error or exc
        self._check()

    @property
    def is_running(self) -> bool:
        """Whether the listener is serving."""
        return self._server.is_running

    @property
    def url(self) -> str:
        """The callback URL to register with Circularo: the relay channel's inbox when
        receiving through a relay, else this listener's own address."""
        if self._relay is not None:
            return parse_listen_url(self._relay)[0].replace("/stream/", "/in/", 1)
        if self._public_url is not None:
            return self._public_url
        return self.local_url

    @property
    def relay(self) -> str | None:
        """The relay stream this listener reads (without its read key), or None."""
        return None if self._relay is None else parse_listen_url(self._relay)[0]

    @property
    def local_url(self) -> str:
        """This listener's own address (loopback by default)."""
        return self._server.root_url + self.path

    def __repr__(self) -> str:
        where = self.url if self.is_running else "stopped"
        signed = "unsigned accepted" if self._verifier is None else "signatures checked"
        return f"<Listener {where} ({signed}), {self._events} events>"

    # -- handing over ----------------------------------------------------------------

    @property
    def events(self) -> pd.DataFrame:
        """The accepted events as a DataFrame (see ``EventStore.events``)."""
        self._check()
        return self.store.events

    @property
    def requests(self) -> pd.DataFrame:
        """Every request received, with its status, verdict and reason."""
        self._check()
        return self.store.requests

    @property
    def forwards(self) -> pd.DataFrame:
        """Each forward to ``forward_to``: event_id, status, latency_ms, error."""
        self._check()
        return self.store.forwards

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        """Block until the listener holds at least ``count`` events; returns how many.

        Counts every event held, those that arrived before the call included, so a cell
        that triggers events and then waits cannot miss any. Raises ``TimeoutError``
        saying how many it holds.
        """
        deadline = time.monotonic() + timeout
        self._check()
        with self._held:
            while self._events < count:
                self._check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the listener holds {self._events} of {count} events "
                                       f"after {timeout:g} s")
                self._held.wait(min(remaining, 0.25))
            return self._events

    def add_secret(self, secret: str) -> None:
        """Also accept signatures made with ``secret`` from now on (rotation, or a webhook
        just registered with a fresh secret); a listener without secrets starts checking."""
        self._verifier = (Verifier(secret) if self._verifier is None
                          else self._verifier.with_secret(secret))

    @property
    def stats(self) -> dict[str, int]:
        """Cheap to poll: events held, and requests by verdict since this listener
        started (``store.counts()`` has the totals)."""
        return {"events": self._events, **self._verdicts}

    def on_event(self, callback: Callable[[dict[str, Any]], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for each new accepted event, in order, on a helper
        thread; an exception it raises is re-raised in your thread by the next call.
        Returns a function that unsubscribes it."""
        return _subscribe(self._callbacks, callback)

    def on_request(self, callback: Callable[[dict[str, Any]], object]) -> Callable[[], None]:
        """Like ``on_event``, for every request, rejected ones included: request_id,
        status, verdict, reason, event_id, and the event's fields when it carried one."""
        return _subscribe(self._request_callbacks, callback)

    def replay(self, events: int | Iterable[int] | pd.DataFrame, *, to: str,
               timeout: float = 10.0) -> pd.DataFrame:
        """Send stored events again, with their original body and headers, to ``to``.

        ``events`` is an event id, several, or a DataFrame with an ``event_id`` column
        (a filtered ``listener.events``). Returns one row per event: event_id, status,
        latency_ms, error.
        """
        self._check()
        if isinstance(events, pd.DataFrame):
            ids = [int(i) for i in events["event_id"]]
        elif isinstance(events, int):
            ids = [events]
        else:
            ids = [int(i) for i in events]
        rows = []
        with http.Session() as session:
            for event_id in ids:
                body, headers = self.store.request_for(event_id)
                kept = {name: value for name, value in headers.items()
                        if name.encode("latin-1").lower() not in _HOP_BY_HOP}
                started = time.perf_counter()
                try:
                    answer = session.post(to, data=body, headers=kept, timeout=timeout)
                    status, error = answer.status_code, None
                except http.RequestException as exc:
                    status, error = None, type(exc).__name__
                rows.append((event_id, status, (time.perf_counter() - started) * 1000, error))
        frame = pd.DataFrame(rows, columns=["event_id", "status", "latency_ms", "error"])
        frame["status"] = frame["status"].astype("Int64")
        return frame

    def _check(self) -> None:
        self._server.check()
        try:
            self._writer.check()
        except Exception as exc:
            self._error = self._error or exc
        error, self._error = self._error, None
        if error is not None:
            raise ListenerError(f"the listener's thread failed: {error}") from error

    # -- the server's thread ---------------------------------------------------------

    def _on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.forward_to is not None:
            self._forwards = asyncio.Queue()
            loop.create_task(self._forward_forever())

    def _handle(self, incoming: Request) -> None:
        """Judge and stage one request (on the server's thread); it is answered once its
        batch is committed (``_commit``)."""
        received_ns = time.time_ns()
        parts = incoming.body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        status, verdict, reason, event = 200, "accepted", None, None
        try:
            if incoming.too_big:
                raise _Verdict(413, (f"body of {incoming.declared} bytes exceeds max_body "
                                     f"({self.max_body} bytes)") if incoming.declared
                               else f"body exceeds max_body ({self.max_body} bytes)")
            event = self._judge(incoming.method, incoming.path, incoming.header, body)
        except _Verdict as rejected:
            status, verdict, reason = rejected.status, "rejected", rejected.reason
        except Exception as exc:  # a judging bug must not lose the request: keep it
            log.exception("could not judge a request")
            status, verdict, reason = 400, "rejected", f"unreadable request: {type(exc).__name__}"
        request = PendingRequest(received_ns, incoming.method, incoming.path, status, verdict,
                                 reason, encode_headers(incoming.headers), body,
                                 incoming.size, event)
        self._writer.add(request)
        if not self._waiting:
            assert self._loop is not None
            # group commit: requests arriving within the next half millisecond share it
            self._loop.call_later(COMMIT_WINDOW, self._commit)
        self._waiting.append((request, incoming))

    def _judge(self, method: str, path: str, headers: dict[bytes, bytes],
               body: bytes) -> tuple[int, str, str, str, bool]:
        """The event a request carries, or the _Verdict that rejects it."""
        if path != self.path:
            raise _Verdict(404, f"no webhook endpoint at {path}; this listener serves "
                                f"{self.path}")
        if method != "POST":
            raise _Verdict(405, f"method {method} not allowed; webhooks are POSTed")
        content_type = headers.get(b"content-type", b"")
        if content_type != b"application/json" and \
                content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            raise _Verdict(415, "content type must be application/json, not "
                                f"{content_type.decode('latin-1') or 'none'}")
        if self._verifier is not None:
            signature = headers.get(_SIGNATURE)
            if signature is None:
                raise _Verdict(401, f"missing {SIGNATURE_HEADER} header")
            if not self._verifier.verify_header(body, signature):
                raise _Verdict(401, "signature does not match the body under any secret")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Verdict(400, f"malformed JSON: {exc}") from None
        except RecursionError:
            raise _Verdict(400, "malformed JSON: nested too deeply") from None
        if not isinstance(payload, dict):
            raise _Verdict(422, "the payload must be a JSON object")
        try:
            document, event, actor, stamp = (payload["documentId"], payload["event"],
                                             payload["actor"], payload["timestamp"])
        except KeyError:
            missing = [name for name in FIELDS if name not in payload]
            raise _Verdict(422, f"payload missing field(s): {', '.join(missing)}") from None
        if not (type(document) is str and type(event) is str and type(actor) is str
                and type(stamp) is str and document and event and actor and stamp):
            name = next(n for n in FIELDS if not isinstance(payload[n], str) or not payload[n])
            raise _Verdict(422, f"field {name} must be a non-empty string")
        try:
            moment = datetime.fromisoformat(stamp)
            if moment.tzinfo is None:
                raise ValueError("no time zone")
            if not 1678 <= moment.year <= 2261:
                raise ValueError("out of range")
            ts_ms = int(moment.timestamp() * 1000)
        except (ValueError, OverflowError):
            raise _Verdict(422, f"timestamp is not an ISO 8601 time with a zone: "
                                f"{stamp!r}") from None
        if self.tolerance is not None:
            skew = ts_ms / 1000 - self.clock()
            if abs(skew) > self.tolerance:
                raise _Verdict(400, f"timestamp {stamp} is {abs(skew):.0f} s "
                                    f"{'ahead' if skew > 0 else 'old'}, outside the tolerance "
                                    f"of {self.tolerance:g} s")
        return ts_ms, event, document, actor, self._verifier is not None

    def _commit(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            self._writer.commit()
        except Exception as exc:  # nothing of this batch may be acknowledged
            log.error("could not store %d requests: %s", len(waiting), exc)
            self._error = exc
            for _, incoming in waiting:
                incoming.respond(503, b'{"status": "error", "reason": "storage failed"}')
            return
        accepted = []
        verdicts = self._verdicts
        for request, incoming in waiting:
            verdicts[request.verdict] += 1
            if request.verdict == "rejected":
                incoming.respond(request.status,
                                 json.dumps({"status": "rejected",
                                             "reason": request.reason}).encode(),
                                 b"Allow: POST\r\n" if request.status == 405 else b"")
                continue
            incoming.respond(200, b'{"status": "%s", "eventId": %d}'
                             % (request.verdict.encode(), request.event_seq or 0))
            if request.verdict == "accepted":
                accepted.append(request)
        if self._request_callbacks:
            for request, _ in waiting:
                self._dispatch.put(("request", _request_dict(request)))
        if accepted:
            with self._held:
                self._events += len(accepted)
                self._held.notify_all()
            if self._callbacks:
                for request in accepted:
                    self._dispatch.put(("event", _event_dict(request)))
            if self._forwards is not None:
                for request in accepted:
                    self._forwards.put_nowait(request)

    async def _forward_forever(self) -> None:
        assert self._forwards is not None and self.forward_to is not None
        head = request_head(self.forward_to)
        connection = Connection(head.origin)
        while True:
            request = await self._forwards.get()
            extra = b"".join(name + b": " + value + b"\r\n"
                             for name, value in _header_pairs(request.headers)
                             if name.lower() not in _HOP_BY_HOP and name.lower() != b"user-agent")
            started = time.perf_counter()
            status, error = None, None
            try:
                async with asyncio.timeout(10):
                    status = await connection.post(head, request.body, extra)
            except TimeoutError:
                connection.close()
                error = "timed out after 10 s"
            except TRANSPORT_ERRORS as exc:
                connection.close()
                error = describe(exc)
            except Exception as exc:  # never let one bad answer stop the forwarding
                connection.close()
                error = f"{type(exc).__name__}: {exc}"
            latency = (time.perf_counter() - started) * 1000
            try:
                self._writer.record_forward(request.event_seq or 0, self.forward_to, status,
                                            latency, error)
            except Exception as exc:
                self._error = exc

    def _run_callbacks(self) -> None:
        while True:
            item = self._dispatch.get()
            if item is None:
                return
            kind, data = item
            for callback in list(self._callbacks if kind == "event" else
                                 self._request_callbacks):
                try:
                    callback(data)
                except Exception as exc:
                    self._error = exc


def _open_ngrok(port: int) -> str:
    """A public https URL for a local port through ngrok (the ``ngrok`` extra)."""
    try:
        from pyngrok import ngrok
    except ImportError:
        raise ConfigurationError("ngrok=True needs pyngrok: pip install 'circtoolkit[ngrok]'"
                                 ) from None
    tunnel = ngrok.connect(port, "http")
    return str(tunnel.public_url).rstrip("/")


def _close_ngrok(public_url: str) -> None:
    from pyngrok import ngrok

    with contextlib.suppress(Exception):  # the tunnel may be gone already
        ngrok.disconnect(public_url)


def _subscribe(callbacks: list[Callable[[dict[str, Any]], object]],
               callback: Callable[[dict[str, Any]], object]) -> Callable[[], None]:
    callbacks.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            callbacks.remove(callback)

    return unsubscribe


def _request_dict(request: PendingRequest) -> dict[str, Any]:
    data: dict[str, Any] = {"request_id": request.request_seq, "status": request.status,
                            "verdict": request.verdict, "reason": request.reason,
                            "event_id": request.event_seq}
    if request.event is not None:
        data.update({k: v for k, v in _event_dict(request).items() if k != "event_id"})
    return data


def _header_pairs(encoded: bytes) -> list[tuple[bytes, bytes]]:
    return [tuple(line.split(b": ", 1)) for line in encoded.split(b"\n") if line]  # type: ignore[misc]


def _event_dict(request: PendingRequest) -> dict[str, Any]:
    assert request.event is not None
    ts_ms, name, document, actor, verified = request.event
    return {"event_id": request.event_seq, "documentId": document, "event": name,
            "actor": actor, "timestamp": pd.Timestamp(ts_ms, unit="ms", tz="UTC"),
            "verified": verified, "received_at": pd.Timestamp(request.received_ns, tz="UTC")}
