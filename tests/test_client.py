"""CircularoClient transport: retries, timeouts, token redaction everywhere."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import traceback
from collections.abc import Iterator

import pytest
import requests

from circtoolkit import (
    APIConnectionError,
    APITimeoutError,
    CircularoClient,
    ConfigurationError,
    Exchange,
    InternalServerError,
    Sandbox,
    TransportError,
    UnexpectedResponseError,
)

from .conftest import ACME_ADMIN

TOKEN = "TYDDbuVgdmnl30GrTN8hmTX6BjqIBstyJNv5KosxFWkyH1SbqeI8KLstKDDHmsFN"


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScriptedUpstream:
    """A real HTTP server on loopback that answers from a script of (status, body, delay).

    It stands in for a misbehaving Circularo (502s, 503s, slow answers, non-JSON), which
    the sandbox itself never is.
    """

    def __init__(self, script: list[tuple[int, object, float]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[str, str]] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                upstream.requests.append((self.command, self.path))
                status, body, delay = (upstream.script.pop(0) if upstream.script
                                       else (200, {"total": 0, "results": []}, 0.0))
                if delay:
                    threading.Event().wait(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if status == 503:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def __enter__(self) -> ScriptedUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[type[ScriptedUpstream]]:
    yield ScriptedUpstream


def assert_no_token(error: BaseException, token: str = TOKEN) -> None:
    text = "".join(traceback.format_exception(error))
    assert token not in text
    assert token not in str(error)
    assert token not in repr(error)
    assert error.__context__ is None or token not in str(error.__context__)
    if isinstance(error, requests.RequestException):
        for part in (error.request, error.response):
            if part is not None:
                assert token not in (part.url or "")


# -- construction ----------------------------------------------------------------------

@pytest.mark.parametrize("base_url", ["sandbox.circularo.com/api/v1", "ftp://x/api",
                                      "https://x.example/api/v1?token=abc", ""])
def test_bad_base_url_is_a_configuration_error(base_url: str) -> None:
    with pytest.raises(ConfigurationError):
        CircularoClient(base_url)


def test_calls_need_a_token() -> None:
    with pytest.raises(ConfigurationError, match="no token"):
        CircularoClient("http://127.0.0.1:9/api/v1").list_webhooks()


def test_token_is_read_only_and_masked_in_repr() -> None:
    client = CircularoClient("https://x.example/api/v1", token=TOKEN)
    assert client.token == TOKEN
    with pytest.raises(AttributeError):
        client.token = "other"  # type: ignore[misc]
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    assert repr(client) == "CircularoClient(base_url='https://x.example/api/v1', token='****msFN')"


# -- redaction -----------------------------------------------------------------------

def test_connection_refused_never_shows_the_token() -> None:
    client = CircularoClient(f"http://127.0.0.1:{free_port()}/api/v1", token=TOKEN, retries=1,
                             backoff=0.0)
    with pytest.raises(APIConnectionError) as info:
        client.list_webhooks()
    error = info.value
    assert isinstance(error, requests.ConnectionError)
    assert "could not connect" in str(error)
    assert "token=****" in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert_no_token(error)


def test_debug_logs_never_show_the_token(sandbox: Sandbox,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    client = sandbox.client(ACME_ADMIN)
    with caplog.at_level(logging.DEBUG):
        client.create_webhook("https://hooks.example/x", hmac_secret="hmac-secret-value")
        client.list_webhooks()
    lines = [record.getMessage() for record in caplog.records]
    assert any("urllib3" in record.name and "/webhooks" in record.getMessage()
               for record in caplog.records), lines
    assert all(client.token not in line for line in lines)
    assert all("hmac-secret-value" not in line for line in lines)
    assert any("token=****" in line for line in lines)
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert all(client.token not in r.getMessage() for r in access)


def test_log_lines_of_failed_connections_never_show_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = CircularoClient(f"http://127.0.0.1:{free_port()}/api/v1", token=TOKEN, retries=2,
                             backoff=0.0)
    with caplog.at_level(logging.DEBUG), pytest.raises(APIConnectionError):
        client.list_webhooks()
    assert caplog.records
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_api_errors_never_show_the_token(sandbox: Sandbox) -> None:
    client = sandbox.client(ACME_ADMIN)
    with pytest.raises(requests.HTTPError) as info:
        client.create_webhook("not-a-url")
    assert_no_token(info.value, client.token or "")
    with pytest.raises(requests.HTTPError) as missing:
        client.delete_webhook("nope")
    assert_no_token(missing.value, client.token or "")


def test_exchanges_are_redacted(sandbox: Sandbox) -> None:
    seen: list[Exchange] = []
    client = CircularoClient.login(sandbox.url, ACME_ADMIN, "sandbox", on_exchange=seen.append)
    client.create_webhook("https://hooks.example/x", hmac_secret="hmac-secret-value")
    text = repr(seen)
    assert client.token not in text
    assert "hmac-secret-value" not in text
    assert '"sandbox"' not in json.dumps([e.request_body for e in seen])
    assert [e.status for e in seen] == [200, 200]
    assert seen[1].url.endswith("/webhooks?token=****")


# -- retries -------------------------------------------------------------------------

def test_idempotent_calls_retry_on_502_503_504(upstream: type[ScriptedUpstream]) -> None:
    script = [(502, b"bad gateway", 0.0), (503, {"status": "ERROR"}, 0.0), (504, b"", 0.0),
              (200, {"total": 0, "results": []}, 0.0)]
    with upstream(script) as server:
        client = CircularoClient(server.url, token=TOKEN, retries=3, backoff=0.001)
        assert client.list_webhooks().total == 0
        assert [method for method, _ in server.requests] == ["GET"] * 4


def test_retries_are_bounded_and_then_raise(upstream: type[ScriptedUpstream]) -> None:
    with upstream([(503, {"status": "ERROR", "code": "BUSY", "message": "busy",
                          "field": None}, 0.0)] * 5) as server:
        client = CircularoClient(server.url, token=TOKEN, retries=2, backoff=0.001)
        with pytest.raises(InternalServerError) as info:
            client.delete_webhook("abc")
        assert info.value.status_code == 503
        assert info.value.code == "BUSY"
        assert len(server.requests) == 3
        assert_no_token(info.value)


def test_posts_are_never_retried(upstream: type[ScriptedUpstream]) -> None:
    with upstream([(503, b"{}", 0.0), (200, {}, 0.0)]) as server:
        client = CircularoClient(server.url, token=TOKEN, retries=3, backoff=0.001)
        with pytest.raises(InternalServerError):
            client.create_webhook("https://hooks.example/x")
        assert [method for method, _ in server.requests] == ["POST"]


def test_other_errors_are_not_retried(upstream: type[ScriptedUpstream]) -> None:
    with upstream([(500, b"{}", 0.0), (200, {"total": 0, "results": []}, 0.0)]) as server:
        client = CircularoClient(server.url, token=TOKEN, retries=3, backoff=0.001)
        with pytest.raises(InternalServerError):
            client.list_webhooks()
        assert len(server.requests) == 1


def test_connection_errors_are_retried_for_idempotent_calls() -> None:
    port = free_port()
    attempts: list[Exchange] = []
    client = CircularoClient(f"http://127.0.0.1:{port}/api/v1", token=TOKEN, retries=2,
                             backoff=0.001, on_exchange=attempts.append)
    with pytest.raises(APIConnectionError):
        client.list_webhooks()
    assert [e.attempt for e in attempts] == [1, 2, 3]
    assert all(e.status is None for e in attempts)
    attempts.clear()
    with pytest.raises(APIConnectionError):
        client.create_webhook("https://hooks.example/x")
    assert [e.attempt for e in attempts] == [1]


def test_timeouts_raise_api_timeout_error(upstream: type[ScriptedUpstream]) -> None:
    with upstream([(200, {"total": 0, "results": []}, 1.0)] * 2) as server:
        client = CircularoClient(server.url, token=TOKEN, timeout=0.2, retries=0)
        with pytest.raises(APITimeoutError) as info:
            client.list_webhooks()
        assert isinstance(info.value, requests.Timeout)
        assert isinstance(info.value, APIConnectionError)
        assert "timed out" in str(info.value)
        assert_no_token(info.value)


def test_a_2xx_that_is_not_json_is_an_unexpected_response(
    upstream: type[ScriptedUpstream],
) -> None:
    with upstream([(200, b"<html>maintenance</html>", 0.0)]) as server:
        client = CircularoClient(server.url, token=TOKEN, retries=0)
        with pytest.raises(UnexpectedResponseError) as info:
            client.list_webhooks()
        assert isinstance(info.value, TransportError)
        assert_no_token(info.value)
