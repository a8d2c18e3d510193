"""CircularoClient: the Circularo REST API (login, webhooks, API keys) on requests.Session.

The token travels as the ``token`` query parameter, as the real API wants. It is kept
out of every message, repr and log line: errors carry redacted URLs, and urllib3's
request log lines are filtered (see :func:`circtoolkit._redact.install_log_redaction`).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import requests

from ._redact import install_log_redaction, mask, redact, redact_json
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    TransportError,
    UnexpectedResponseError,
    error_for_status,
)
from .models import ApiKey, Webhook, WebhookList

__all__ = ["DEFAULT_BASE_URL", "CircularoClient", "Exchange"]

DEFAULT_BASE_URL: Final = "https://sandbox.circularo.com/api/v1"
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES: Final = frozenset({502, 503, 504})
MAX_RETRY_AFTER: Final = 30.0

log = logging.getLogger(__name__)
install_log_redaction()


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer, for tracing (``on_exchange``). The URL and the bodies
    are redacted (token, password and hmacSecret masked); ``status`` is None when no
    answer came; ``attempt`` counts from 1."""

    method: str
    url: str
    request_body: Any
    status: int | None
    response_body: Any
    elapsed: float
    attempt: int


def _validated_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError("base_url must not carry a query string or fragment")
    return base_url.rstrip("/")


def _parse_body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


class CircularoClient:
    """A Circularo API client for one user (one token).

    >>> client = CircularoClient.login(sandbox.url, "admin@acme.test", "sandbox")
    >>> hook = client.create_webhook("https://example.com/hook", hmac_secret="s3cret")

    ``timeout`` (seconds, or a ``(connect, read)`` pair) bounds every call. Idempotent
    calls (GET, PUT, DELETE) are retried up to ``retries`` times, with exponential
    backoff and full jitter, after a connection error or a 502/503/504 answer (honouring
    ``Retry-After``); POSTs never are, so nothing is created twice.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        *,
        timeout: float | tuple[float, float] = 10.0,
        retries: int = 2,
        backoff: float = 0.25,
        session: requests.Session | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        if retries < 0:
            raise ConfigurationError("retries must be >= 0")
        self._base_url = _validated_base_url(base_url)
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.on_exchange = on_exchange
        self._session = session or requests.Session()
        self._session.headers.setdefault("Accept", "application/json")

    # -- construction and identity -------------------------------------------------

    @classmethod
    def login(
        cls,
        base_url: str,
        name: str,
        password: str,
        tenant: str | None = None,
        **options: Any,
    ) -> CircularoClient:
        """Log in with ``POST /login`` and return a client holding the new session token.

        ``options`` are passed to the constructor (``timeout``, ``retries``, ...).
        """
        client = cls(base_url, **options)
        body: dict[str, Any] = {"name": name, "password": password, "returnToken": True}
        if tenant is not None:
            body["tenant"] = tenant
        answer = client._request("POST", "/login", json_body=body, authenticated=False)
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise UnexpectedResponseError(
                "POST /login answered without a token", method="POST", url=client._base_url + "/login"
            )
        client._token = token
        return client

    @property
    def base_url(self) -> str:
        """The API base URL, ending in ``/api/v1`` for Circularo."""
        return self._base_url

    @property
    def token(self) -> str | None:
        """The token this client sends (read-only; None once logged out)."""
        return self._token

    def __repr__(self) -> str:
        return f"CircularoClient(base_url={self._base_url!r}, token={mask(self._token)!r})"

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._session.close()

    def __enter__(self) -> CircularoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the API -------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """Check the token with ``GET /login``: the user, tenant and rights behind it."""
        return self._request("GET", "/login", params={"returnToken": "false"})

    def logout(self) -> None:
        """End the session (``GET /logout``); the token stops working at once."""
        self._request("GET", "/logout")
        self._token = None

    def create_api_key(self) -> ApiKey:
        """Create a long-lived API key (``POST /api/key``); use ``.key`` as a token."""
        return ApiKey.from_api(self._request("POST", "/api/key"))

    def revoke_api_key(self, key: str | ApiKey) -> None:
        """Revoke an API key (``DELETE /api/key/<key>``); it gets 401 from then on."""
        value = key.key if isinstance(key, ApiKey) else key
        self._request("DELETE", f"/api/key/{value}", secret_in_path=value)

    def create_webhook(
        self,
        callback_url: str,
        *,
        type: str = "organization",
        hmac_secret: str | None = None,
        name: str | None = None,
    ) -> Webhook:
        """Subscribe ``callback_url`` to every document event in a scope (``POST /webhooks``).

        ``type`` is ``organization`` (your organization; a global admin names one in
        ``name``) or ``tenant`` (global admins only). With ``hmac_secret`` every
        notification carries ``x-circularo-signature``.
        """
        body: dict[str, Any] = {"type": type, "callbackUrl": callback_url}
        if hmac_secret is not None:
            body["hmacSecret"] = hmac_secret
        if name is not None:
            body["name"] = name
        return Webhook.from_api(self._request("POST", "/webhooks", json_body=body))

    def list_webhooks(self) -> WebhookList:
        """The webhooks this user may see (``GET /webhooks``)."""
        return WebhookList.from_api(self._request("GET", "/webhooks"))

    def delete_webhook(self, webhook_id: str | Webhook) -> None:
        """Delete a webhook (``DELETE /webhooks/<id>``); notifications stop at once."""
        value = webhook_id.id if isinstance(webhook_id, Webhook) else webhook_id
        self._request("DELETE", f"/webhooks/{value}")

    # -- documents (a simplified subset of the real API) ---------------------------

    def create_document(self, title: str, recipients: list[str] | None = None
                        ) -> dict[str, Any]:
        """``POST /documents``; with ``recipients`` they are asked to sign at once.
        Returns ``{"documentId", "title", "status", "_version"}``."""
        body: dict[str, Any] = {"title": title}
        if recipients is not None:
            body["recipients"] = recipients
        return self._request("POST", "/documents", json_body=body)["results"][0]

    def get_document(self, document_id: str) -> dict[str, Any]:
        """``GET /documents/<id>``: status, ``_version`` and every request."""
        return self._request("GET", f"/documents/{document_id}")

    def share_document(self, document_id: str, recipients: list[str], *,
                       purpose: str = "sign", valid_until: str | None = None
                       ) -> dict[str, Any]:
        """``POST /share``: ask ``recipients`` to sign (or approve, review, accept)."""
        body: dict[str, Any] = {"documentId": document_id, "sharePurpose": purpose,
                                "recipients": recipients}
        if valid_until is not None:
            body["validUntil"] = valid_until
        return self._request("POST", "/share", json_body=body)

    def cancel_share(self, share_id: str) -> None:
        """``DELETE /share/<id>``: withdraw the share's pending requests."""
        self._request("DELETE", f"/share/{share_id}")

    def document_action(self, action: str, document_id: str, *, version: int | None = None,
                        to: str | None = None) -> dict[str, Any]:
        """``PUT /documents/<action>/<version>``: sign, reject, delegate (``to``), approve,
        review or accept. Without ``version`` the current one is read first."""
        if version is None:
            version = self.get_document(document_id)["_version"]
        body: dict[str, Any] = {"documentId": document_id}
        if to is not None:
            body["to"] = to
        return self._request("PUT", f"/documents/{action}/{version}", json_body=body)

    def sign_document(self, document_id: str, *, version: int | None = None
                      ) -> dict[str, Any]:
        """Sign a document you were asked to sign."""
        return self.document_action("sign", document_id, version=version)

    def edit_document(self, document_id: str, title: str, *, version: int | None = None
                      ) -> dict[str, Any]:
        """``PUT /documents/<id>``: change the title."""
        if version is None:
            version = self.get_document(document_id)["_version"]
        return self._request("PUT", f"/documents/{document_id}",
                             json_body={"title": title, "_version": version})

    def delete_document(self, document_id: str) -> None:
        """``DELETE /documents/<id>``."""
        self._request("DELETE", f"/documents/{document_id}")

    # -- transport -----------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        authenticated: bool = True,
        secret_in_path: str | None = None,
    ) -> Any:
        """Send one API call (with retries if idempotent) and return its parsed JSON."""
        query = dict(params or {})
        if authenticated:
            if not self._token:
                raise ConfigurationError(
                    "this client has no token: use CircularoClient.login() or pass token="
                )
            query["token"] = self._token
        url = self._base_url + path + (f"?{urlencode(query)}" if query else "")
        shown_url = redact(url, secret_in_path)
        data = None
        headers = {}
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        attempts = 1 + (self.retries if method in IDEMPOTENT_METHODS else 0)

        for attempt in range(1, attempts + 1):
            started = time.perf_counter()
            failure: TransportError | None = None
            response: requests.Response | None = None
            try:
                response = self._session.request(
                    method, url, data=data, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                failure = self._transport_error(exc, method, shown_url, secret_in_path)
            elapsed = time.perf_counter() - started
            if response is not None:
                self._redact_response(response, secret_in_path)
            body = _parse_body(response) if response is not None else None
            status = response.status_code if response is not None else None
            self._trace(method, shown_url, json_body, status, body, elapsed, attempt)

            retryable = failure is not None or status in RETRY_STATUSES
            if retryable and attempt < attempts:
                delay = self._retry_delay(attempt, response)
                log.debug("%s %s: attempt %d failed, retrying in %.2fs", method, shown_url,
                          attempt, delay)
                time.sleep(delay)
                continue
            if failure is not None:
                raise failure
            assert response is not None
            if not response.ok:
                raise self._status_error(response, body, method, shown_url)
            if body is not None and not isinstance(body, dict | list):
                raise UnexpectedResponseError(
                    f"{method} {shown_url} answered {status} with a body that is not JSON",
                    method=method, url=shown_url, response=response,
                )
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def _transport_error(
        self, exc: requests.RequestException, method: str, shown_url: str, secret: str | None
    ) -> TransportError:
        reason = redact(str(exc), self._token, secret)
        kind: type[TransportError]
        if isinstance(exc, requests.Timeout):
            kind, what = APITimeoutError, "timed out"
        elif isinstance(exc, requests.ConnectionError):
            kind, what = APIConnectionError, "could not connect"
        else:
            kind, what = TransportError, "failed"
        return kind(f"{method} {shown_url} {what}: {reason}", method=method, url=shown_url)

    def _redact_response(self, response: requests.Response, secret: str | None) -> None:
        response.url = redact(response.url, self._token, secret)
        if response.request is not None and response.request.url:
            response.request.url = redact(response.request.url, self._token, secret)

    def _status_error(
        self, response: requests.Response, body: Any, method: str, shown_url: str
    ) -> APIStatusError:
        status = response.status_code
        kind = error_for_status(status, body)
        detail = response.reason or ""
        if isinstance(body, dict) and body.get("message"):
            detail = f"{body.get('code', '')}: {body['message']}".lstrip(": ")
            if body.get("field"):
                detail += f" (field: {body['field']})"
        message = redact(f"{method} {shown_url} -> {status} {detail}".rstrip(), self._token)
        return kind(message, status_code=status, body=body, method=method, url=shown_url,
                    response=response)

    def _retry_delay(self, attempt: int, response: requests.Response | None) -> float:
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
            except ValueError:
                pass
        return random.uniform(0, self.backoff * 2 ** (attempt - 1))

    def _trace(self, method: str, url: str, request_body: Any, status: int | None,
               response_body: Any, elapsed: float, attempt: int) -> None:
        log.debug("%s %s -> %s in %.1f ms", method, url, status, elapsed * 1000)
        if self.on_exchange is not None:
            self.on_exchange(Exchange(method, url, redact_json(request_body), status,
                                      redact_json(response_body), elapsed, attempt))
