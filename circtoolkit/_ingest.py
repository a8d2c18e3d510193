"""A lean HTTP/1.1 server for the listener's one job: take POSTs, answer after commit.

uvicorn runs any ASGI app; this runs one handler, with less around it: httptools parses
each connection's bytes, the handler judges and stages the request synchronously, and
the answer is written straight to the transport once the request's batch is committed
- no task, message dicts or future per request. Keep-alive, pipelining (answers stay
in order), chunked bodies, ``Expect: 100-continue`` and a body size limit are handled;
anything that is not HTTP gets a 400 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools

from ._server import BoundAddress, ServerError, bind_socket

__all__ = ["IngestServer", "Request"]


class Request:
    """One parsed request, handed to the handler; ``respond`` answers it."""

    __slots__ = ("body", "connection", "declared", "handled", "header", "headers", "method",
                 "path", "size", "too_big")

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.method = ""
        self.path = ""
        self.headers: list[tuple[bytes, bytes]] = []  # as received, in order
        self.header: dict[bytes, bytes] = {}  # by name (the last value wins)
        self.body: list[bytes] = []
        self.size = 0
        self.too_big = False
        self.declared: int | None = None
        self.handled = False

    def respond(self, status: int, body: bytes, extra: bytes = b"") -> None:
        """Write the answer (in order with the connection's other requests)."""
        self.connection.respond(self, status, body, extra)


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Connection(asyncio.Protocol):
    def __init__(self, server: IngestServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: Request | None = None
        # answers owed, in arrival order: (request or None for an error, answer, keep alive)
        self.pending: list[tuple[Request | None, bytes | None, bool]] = []
        self.closing = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is duck-typed
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b'{"status": "rejected", "reason": "upgrades are not supported"}')
        except httptools.HttpParserError:
            if not self.closing:  # bytes after a "Connection: close" request are ignored
                self._fail(400, b'{"status": "rejected", "reason": "malformed HTTP"}')

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.current = Request(self)
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        self.current.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        request = self.current
        assert request is not None
        request.method = self.parser.get_method().decode("ascii", "replace")
        request.path = httptools.parse_url(self._url).path.decode("utf-8", "replace")
        headers = request.header = dict(request.headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit():
            request.declared = int(declared)
        if request.declared is not None and request.declared > self.server.max_body:
            request.too_big = True  # answered now (413); the body is not waited for
            self.closing = True
            self._hand_over(request, keep_alive=False)
        elif (headers.get(b"expect", b"").lower() == b"100-continue" and self.transport
              and not self.pending):  # never ahead of an earlier request's answer
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        request = self.current
        assert request is not None
        request.size += len(body)
        if request.size > self.server.max_body:
            request.too_big = True
            request.body = []
        elif not request.too_big:
            request.body.append(body)

    def on_message_complete(self) -> None:
        request, self.current = self.current, None
        assert request is not None
        if request.handled:
            return
        keep_alive = self.parser.should_keep_alive() and not request.too_big
        if not keep_alive:
            self.closing = True  # whatever follows on this connection is not read
        self._hand_over(request, keep_alive=keep_alive)

    def _hand_over(self, request: Request, *, keep_alive: bool) -> None:
        request.handled = True
        self.pending.append((request, None, keep_alive))
        try:
            self.server.handler(request)
        except Exception as exc:  # a handler bug: answer, and report it to the owner
            self.server.report(exc)
            self.respond(request, 500, b'{"status": "error", "reason": "internal error"}', b"")

    # answers
    def respond(self, request: Request, status: int, body: bytes, extra: bytes) -> None:
        for index, (queued, answer, keep_alive) in enumerate(self.pending):
            if queued is request and answer is None:
                connection = b"" if keep_alive else b"Connection: close\r\n"
                head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n%s%s\r\n"
                        % (status, _REASONS.get(status, b"Unknown"), len(body), extra,
                           connection))
                self.pending[index] = (queued, head + body, keep_alive)
                break
        self._flush()

    def _flush(self) -> None:
        """Write every answer that is ready and owed first; close after a final one."""
        while self.pending and self.pending[0][1] is not None:
            _, answer, keep_alive = self.pending.pop(0)
            if self.transport is None:
                continue
            self.transport.write(answer)  # type: ignore[arg-type]
            if not keep_alive:
                self.pending.clear()
                self.transport.close()
                return

    def _fail(self, status: int, body: bytes) -> None:
        """Answer an unreadable request, after the answers still owed, and close."""
        self.closing = True
        answer = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (status, _REASONS[status], len(body), body))
        self.pending.append((None, answer, False))
        self._flush()


class IngestServer(BoundAddress):
    """Serves ``handler`` on a background thread with its own (uv)loop.

    ``handler(request)`` runs on that thread for each complete request and must, now or
    later on the same thread, call ``request.respond(...)``. ``on_loop`` is called with
    the loop once it runs (the listener schedules its commits and forwards there).
    """

    def __init__(self, handler: Callable[[Request], None], *, host: str, port: int,
                 max_body: int, on_loop: Callable[[asyncio.AbstractEventLoop], None],
                 name: str = "circtoolkit-listener") -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.max_body = max_body
        self.on_loop = on_loop
        self.name = name
        self.connections: set[_Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._port: int | None = None
        self._error: BaseException | None = None
        self._running = threading.Event()

    @property
    def is_running(self) -> bool:
        return self._running.is_set() and bool(self._thread and self._thread.is_alive())

    def start(self, timeout: float = 10.0) -> None:
        self.check()
        sock = bind_socket(self.host, self.requested_port)
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock, ready), name=self.name,
                                        daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or not self._running.is_set():
            self.stop()
            self.check()
            raise ServerError(f"{self.name} did not start")

    def _run(self, sock: Any, ready: threading.Event) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is not on every platform
            loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop, sock, ready))
        except BaseException as exc:
            self._error = exc
        finally:
            self._running.clear()
            ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop, sock: Any,
                     ready: threading.Event) -> None:
        self.loop = loop
        loop.set_exception_handler(self._loop_error)  # never print from this thread
        self._stopped = asyncio.Event()
        server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=2048)
        self.on_loop(loop)
        self._running.set()
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.close()
            await server.wait_closed()
            others = [task for task in asyncio.all_tasks(loop)
                      if task is not asyncio.current_task()]
            for task in others:  # the listener's forwarder, if any
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    def report(self, error: BaseException) -> None:
        """Keep an error of the server's thread for the caller's next call."""
        if self._error is None:
            self._error = error

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """A callback failed on the server's thread: kept for the caller's next call."""
        error = context.get("exception") or RuntimeError(context.get("message", "loop error"))
        if self._error is None:
            self._error = error

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self.loop = None
        self._port = None
        self.check()

    def check(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise ServerError(f"{self.name} failed: {error!r}") from error
