"""A tunnel-style relay: a public inbox per channel, read back over a stream.

For a notebook with no public address: Circularo POSTs to the channel's inbox URL on a
relay that is reachable; the notebook's ``Listener(relay=...)`` connects *outward* to
the relay and receives each request byte-exact (method, headers, body) over
Server-Sent Events, resuming after the last one it saw. The relay never needs the HMAC
secret: the listener verifies signatures itself.

Endpoints (all under the relay's root):

- ``POST /channels`` creates a channel and answers ``{"channel", "inbox", "stream",
  "readKey"}``. The channel id and the read key are long random strings; the read key
  is shown once, and stored only as a hash.
- ``POST /in/<channel>[/<path>]``: what senders call. The request is stored and answered
  ``202`` with ``{"status": "relayed", "seq": n}``. 404 for an unknown channel, 413 over
  1 MiB.
- ``GET /stream/<channel>?after=<seq>`` with ``Authorization: Bearer <read key>``: an SSE
  stream of ``id: <seq>`` / ``data: {"seq", "receivedNs", "method", "path", "headers":
  [[name, value], ...], "body": base64}``; ``Last-Event-ID`` works too. 401 without the
  key, 403 with a wrong one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests as http

from ._redact import mask
from ._server import BackgroundServer, ServedApp
from .errors import ConfigurationError

__all__ = ["MAX_BODY", "Channel", "Relay", "RelayClient", "create_channel", "create_relay_app",
           "parse_listen_url"]

MAX_BODY = 1024 * 1024
KEEPALIVE = 15.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    id       TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_channel ON messages (channel, seq);
"""


@dataclass(frozen=True)
class Channel:
    """A relay channel: ``inbox`` is the public URL to register as a webhook's callback;
    ``listen_url`` (stream URL + ``#`` + read key) is what ``Listener(relay=...)`` takes."""

    id: str
    inbox: str
    stream: str
    read_key: str = field(repr=False)

    @property
    def listen_url(self) -> str:
        return f"{self.stream}#{self.read_key}"

    def __repr__(self) -> str:
        return (f"Channel(id={self.id!r}, inbox={self.inbox!r}, stream={self.stream!r}, "
                f"read_key={mask(self.read_key)!r})")


def parse_listen_url(listen_url: str) -> tuple[str, str]:
    """(stream URL, read key) from ``<stream URL>#<read key>``."""
    stream, _, key = listen_url.partition("#")
    parts = urlsplit(stream)
    if parts.scheme not in ("http", "https") or "/stream/" not in parts.path or not key:
        raise ConfigurationError("relay must be a channel's listen URL: "
                                 "http(s)://<relay>/stream/<channel>#<read key>")
    return stream, key


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class _RelayState:
    """Channels and messages in SQLite; wakes streams when a message arrives."""

    def __init__(self, db: str | Path | None) -> None:
        self.db = sqlite3.connect(":memory:" if db is None else str(db),
                                  check_same_thread=False, isolation_level=None)
        if db is not None:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(_SCHEMA)
        self.lock = threading.Lock()
        self.arrived: dict[str, asyncio.Event] = {}

    def wake(self, channel: str) -> None:
        event = self.arrived.get(channel)
        if event is not None:
            event.set()


async def _read_body(receive: Callable[..., Any], limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Callable[..., Any], status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_relay_app(db: str | Path | None = None) -> Callable[..., Any]:
    """The relay as a raw ASGI app (mountable under a prefix, as the sandbox does)."""
    state = _RelayState(db)

    async def app(scope: dict[str, Any], receive: Callable[..., Any],
                  send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        root = scope.get("root_path", "")
        path = scope["path"]
        if root and path.startswith(root):
            path = path[len(root):]
        base = _base_url(scope) + root
        parts = path.strip("/").split("/")
        method = scope["method"]
        if parts == ["channels"] and method == "POST":
            await _drain(receive)
            await create_channel(send, base)
        elif len(parts) >= 2 and parts[0] == "in" and method == "POST":
            await inbox(scope, receive, send, parts[1], "/" + "/".join(parts[2:]))
        elif len(parts) == 2 and parts[0] == "stream" and method == "GET":
            await stream(scope, receive, send, parts[1])
        else:
            await _drain(receive)
            await _json(send, 404, {"status": "error", "reason": f"no such endpoint: {path}"})

    async def create_channel(send: Callable[..., Any], base: str) -> None:
        channel, key = secrets.token_urlsafe(18), secrets.token_urlsafe(32)
        with state.lock:
            state.db.execute("INSERT INTO channels VALUES (?, ?, ?)",
                             (channel, _hash(key), time.time()))
        await _json(send, 201, {"channel": channel, "inbox": f"{base}/in/{channel}",
                                "stream": f"{base}/stream/{channel}", "readKey": key})

    def known(channel: str) -> str | None:
        with state.lock:
            row = state.db.execute("SELECT key_hash FROM channels WHERE id = ?",
                                   (channel,)).fetchone()
        return row[0] if row else None

    async def inbox(scope: dict[str, Any], receive: Callable[..., Any],
                    send: Callable[..., Any], channel: str, path: str) -> None:
        body = await _read_body(receive, MAX_BODY)
        if known(channel) is None:
            await _json(send, 404, {"status": "error", "reason": "no such channel"})
            return
        if body is None:
            await _json(send, 413, {"status": "error",
                                    "reason": f"body exceeds {MAX_BODY} bytes"})
            return
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        with state.lock:
            seq = state.db.execute(
                "INSERT INTO messages (channel, received_ns, method, path, headers, body)"
                " VALUES (?, ?, ?, ?, ?, ?)", (channel, time.time_ns(), scope["method"], path,
                                               json.dumps(headers), body)).lastrowid
        state.wake(channel)
        await _json(send, 202, {"status": "relayed", "seq": seq})

    async def stream(scope: dict[str, Any], receive: Callable[..., Any],
                     send: Callable[..., Any], channel: str) -> None:
        key_hash = known(channel)
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if key_hash is None:
            await _json(send, 404, {"status": "error", "reason": "no such channel"})
            return
        if not authorization.startswith("Bearer "):
            await _json(send, 401, {"status": "error", "reason": "the read key is required"})
            return
        if not hmac.compare_digest(_hash(authorization[7:]), key_hash):
            await _json(send, 403, {"status": "error", "reason": "wrong read key"})
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            after = int(headers.get(b"last-event-id", b"").decode() or query.get("after",
                                                                                ["0"])[0])
        except ValueError:
            await _json(send, 400, {"status": "error", "reason": "after must be an integer"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"),
                                (b"cache-control", b"no-store")]})
        arrived = state.arrived.setdefault(channel, asyncio.Event())
        await send({"type": "http.response.body", "body": b": connected\n\n",
                    "more_body": True})

        async def disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(disconnect())
        try:
            await _follow(channel, after, arrived, gone, send)
        finally:
            gone.cancel()

    async def _follow(channel: str, after: int, arrived: asyncio.Event,
                      gone: asyncio.Future[None], send: Callable[..., Any]) -> None:
        while not gone.done():
            arrived.clear()
            with state.lock:
                rows = state.db.execute(
                    "SELECT seq, received_ns, method, path, headers, body FROM messages"
                    " WHERE channel = ? AND seq > ? ORDER BY seq LIMIT 500",
                    (channel, after)).fetchall()
            if rows:
                chunks = []
                for seq, received_ns, method, path, header_text, body in rows:
                    data = json.dumps({"seq": seq, "receivedNs": received_ns, "method": method,
                                       "path": path, "headers": json.loads(header_text),
                                       "body": base64.b64encode(body).decode()})
                    chunks.append(f"id: {seq}\ndata: {data}\n\n".encode())
                    after = seq
                await send({"type": "http.response.body", "body": b"".join(chunks),
                            "more_body": True})
                continue
            waiting = asyncio.ensure_future(arrived.wait())
            done, _ = await asyncio.wait({waiting, gone}, timeout=KEEPALIVE,
                                         return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if not done:
                await send({"type": "http.response.body", "body": b": keep-alive\n\n",
                            "more_body": True})

    app.state = state  # type: ignore[attr-defined]
    return app


async def _drain(receive: Callable[..., Any]) -> None:
    while (await receive()).get("more_body"):
        pass


def _base_url(scope: dict[str, Any]) -> str:
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        server_host, server_port = scope.get("server") or ("localhost", 80)
        host = f"{server_host}:{server_port}"
    return f"{scope.get('scheme', 'http')}://{host}"


class Relay(ServedApp):
    """A relay served from a background thread (``circtoolkit relay`` in the foreground)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 db: str | Path | None = None) -> None:
        self.app = create_relay_app(db)
        self._server = BackgroundServer(self.app, host=host, port=port,
                                        name="circtoolkit-relay")

    @property
    def url(self) -> str:
        """The relay's root URL."""
        return self._server.root_url

    def create_channel(self) -> Channel:
        """A new channel on this relay."""
        return create_channel(self.url)


def create_channel(relay_url: str, *, timeout: float = 10.0) -> Channel:
    """Create a channel on the relay at ``relay_url`` (any relay: in-process, the CLI's,
    or the sandbox's at ``<sandbox root>/relay``)."""
    answer = http.post(relay_url.rstrip("/") + "/channels", timeout=timeout)
    answer.raise_for_status()
    data = answer.json()
    return Channel(data["channel"], data["inbox"], data["stream"], data["readKey"])


_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding",
                         "keep-alive", "upgrade", "te", "trailer"})


class RelayClient:
    """Reads a channel's stream and hands each request, byte-exact, to a local receiver.

    Runs on its own thread: connects outward, POSTs every relayed request to
    ``deliver_to`` with its original method, headers and body, and advances its cursor
    (kept by ``cursor_store``) only once the receiver has answered, so that nothing is
    lost across disconnects or restarts; after a crash between the two, a request is
    handed over again, and a receiver that recognises duplicates counts it as one.
    """

    def __init__(self, listen_url: str, deliver_to: str, *,
                 load_cursor: Callable[[str], int], save_cursor: Callable[[str, int], None],
                 on_error: Callable[[BaseException], None] | None = None,
                 retry_delay: float = 0.5) -> None:
        self.stream_url, self._key = parse_listen_url(listen_url)
        self.channel = self.stream_url.rstrip("/").rsplit("/", 1)[-1]
        self.inbox = self.stream_url.replace("/stream/", "/in/", 1)
        self.deliver_to = deliver_to
        self._load_cursor, self._save_cursor = load_cursor, save_cursor
        self._on_error = on_error
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._session = http.Session()
        self._thread: threading.Thread | None = None
        self._response: http.Response | None = None
        self.connected = threading.Event()
        self.received = 0

    def __repr__(self) -> str:
        return f"<RelayClient {self.stream_url} (read key {mask(self._key)})>"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="circtoolkit-relay-client")
        self._thread.start()

    def stop(self) -> None:
        """Disconnect: the blocked read is cut by shutting its socket down."""
        self._stop.set()
        response = self._response
        connection = getattr(getattr(response, "raw", None), "_connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._session.close()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        forward = http.Session()
        while not self._stop.is_set():
            try:
                self._follow(forward)
            except Exception as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                if isinstance(exc, http.HTTPError) and exc.response is not None and \
                        exc.response.status_code in (401, 403, 404):
                    if self._on_error is not None:  # a wrong key or channel: retrying is futile
                        self._on_error(ConfigurationError(
                            f"the relay refused the stream: {exc.response.status_code} "
                            f"{exc.response.text[:200]}"))
                    return
                if not isinstance(exc, http.RequestException | OSError) and self._on_error:
                    self._on_error(exc)  # not the network: worth knowing, then go on
                self._stop.wait(self._retry_delay)

    def _follow(self, forward: http.Session) -> None:
        after = self._load_cursor(self.channel)
        with self._session.get(self.stream_url, params={"after": after}, stream=True,
                               headers={"Authorization": f"Bearer {self._key}",
                                        "Accept": "text/event-stream"},
                               timeout=(5, KEEPALIVE * 4)) as answer:
            answer.raise_for_status()
            self._response = answer
            self.connected.set()
            data: list[str] = []
            for line in answer.iter_lines(decode_unicode=True):
                if self._stop.is_set():
                    return
                if line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    self._hand_over(forward, json.loads("\n".join(data)))
                    data = []

    def _hand_over(self, forward: http.Session, message: dict[str, Any]) -> None:
        headers = {name: value for name, value in message["headers"]
                   if name.lower() not in _HOP_BY_HOP}
        suffix = message["path"].lstrip("/")
        url = self.deliver_to.rstrip("/") + "/" + suffix if suffix else self.deliver_to
        while not self._stop.is_set():
            try:
                answer = forward.request(message["method"], url, headers=headers, timeout=30,
                                         data=base64.b64decode(message["body"]))
            except http.RequestException:
                self._stop.wait(self._retry_delay)  # the local receiver is away: again
                continue
            # stored (2xx) or judged and kept (4xx): done; 5xx, 408, 429: not kept, again
            if answer.status_code < 500 and answer.status_code not in (408, 429):
                break
            self._stop.wait(self._retry_delay)
        else:
            return
        self._save_cursor(self.channel, int(message["seq"]))
        self.received += 1
