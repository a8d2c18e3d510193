"""The wire side of webhook delivery and forwarding: one keep-alive HTTP/1.1 connection
per worker.

The sandbox's delivery engine (and the listener's forwarder) POST tens of thousands of
small bodies per second to a handful of callback URLs. General-purpose clients spend
most of that time on features this never uses; here each worker owns one connection to
one origin, writes a request whose head is built once per URL, and parses the answer
with httptools (uvicorn's C parser), chunked bodies included. http and https.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["TRANSPORT_ERRORS", "Connection", "Origin", "RequestHead", "describe",
           "request_head"]

MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "circtoolkit/0.1"
_SSL = ssl.create_default_context()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where to connect: scheme, host, port."""

    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A callback URL's origin and the fixed start of every POST to it."""

    origin: Origin
    prefix: bytes


@lru_cache(maxsize=4096)
def request_head(url: str) -> RequestHead:
    """Parse ``url`` once; ValueError if it cannot be delivered to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                   safe="/?&=%:@!$'()*+,;~-._")
    host = parts.netloc.rsplit("@", 1)[-1].encode("idna").decode("ascii")
    prefix = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n".encode(
        "ascii")
    return RequestHead(Origin(parts.scheme, parts.hostname, port), prefix)


class _Response:
    """httptools callbacks collecting one response."""

    __slots__ = ("complete", "delimited", "headers_done", "keep_alive", "parser", "size")

    def __init__(self) -> None:
        self.complete = False
        self.keep_alive = True
        self.delimited = False  # by Content-Length or chunks, rather than by closing
        self.headers_done = False
        self.size = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"connection" and value.lower() == b"close":
            self.keep_alive = False
        elif name in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self) -> None:
        # asked here: once the message is complete the parser has reset
        self.headers_done = True
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_RESPONSE_BYTES:
            raise ValueError("response body over 1 MiB")

    def on_message_complete(self) -> None:
        self.complete = True


class Connection:
    """One keep-alive connection to one origin, opened on first use, reopened as needed."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, head: RequestHead, body: bytes, extra_headers: bytes) -> int:
        """Send one POST and return the status; raises OSError/ValueError on failure.

        A request on a reused connection that the server had meanwhile closed is sent
        once more on a fresh one (at-least-once allows it).
        """
        request = b"".join((head.prefix, b"Content-Length: ", str(len(body)).encode(), b"\r\n",
                            extra_headers, b"\r\n", body))
        if self._writer is not None and self._writer.is_closing():
            self.close()  # the server (or a reset) closed it while idle
        reused = self._writer is not None
        try:
            return await self._roundtrip(request)
        except (OSError, EOFError, httptools.HttpParserError, ValueError, RuntimeError):
            self.close()
            if not reused:
                raise
        return await self._roundtrip(request)

    async def _roundtrip(self, request: bytes) -> int:
        if self._writer is None:
            origin = self.origin
            self._reader, self._writer = await asyncio.open_connection(
                origin.host, origin.port, ssl=_SSL if origin.scheme == "https" else None,
                limit=MAX_RESPONSE_BYTES)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(request)
        response = _Response()
        parser = response.parser
        try:
            while not response.complete:
                data = await reader.read(65536)
                if not data:
                    if response.headers_done and not response.delimited:
                        break  # an HTTP/1.0-style body ends where the connection does
                    raise EOFError("connection closed before a full response")
                parser.feed_data(data)
        except BaseException:
            self.close()
            raise
        if not response.keep_alive or not response.complete:
            self.close()
        return parser.get_status_code()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


TRANSPORT_ERRORS = (OSError, EOFError, ValueError, RuntimeError, httptools.HttpParserError)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a delivery failure."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
