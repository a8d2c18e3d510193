"""One exception tree for everything circtoolkit raises.

Catch :class:`CircularoError` to catch them all. Errors that come from talking to
Circularo over HTTP are also :class:`requests.RequestException` subclasses, so code
that already handles ``requests`` errors keeps working::

    CircularoError
    ├── ConfigurationError        (also ValueError)  bad arguments: base URL, secrets, ...
    ├── ApiProblem                (circtoolkit.sandbox) the sandbox's error answers, inside it
    ├── ListenerError             the listener's thread failed (storage, a callback)
    └── TransportError            (also requests.RequestException)
        ├── APIConnectionError    (also requests.ConnectionError)  refused, DNS, reset, ...
        │   └── APITimeoutError   (also requests.Timeout)           no answer within timeout
        ├── UnexpectedResponseError                                  2xx whose body is not JSON
        └── APIStatusError        (also requests.HTTPError)         any non-2xx answer
            ├── BadRequestError           400  invalid input; ``.field`` names it
            ├── AuthenticationError       401  unknown, revoked or expired token
            │   └── TokenExpiredError     401  the token expired: log in again
            ├── PermissionDeniedError     403  e.g. no ``use_webhooks`` right
            ├── NotFoundError             404  unknown or invisible id
            ├── ConflictError             409  stale ``_version``
            ├── RateLimitError            429
            └── InternalServerError       5xx

Messages never contain the API token: URLs are redacted (``token=****``) before an
error is built, and connection errors are re-raised without chaining the original
``requests`` exception, whose text carries the full URL.
"""

from __future__ import annotations

from typing import Any

import requests

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CircularoError",
    "ConfigurationError",
    "ConflictError",
    "InternalServerError",
    "ListenerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "TokenExpiredError",
    "TransportError",
    "UnexpectedResponseError",
    "error_for_status",
]


class CircularoError(Exception):
    """Root of every error circtoolkit raises."""


class ConfigurationError(CircularoError, ValueError):
    """An argument is unusable (a malformed base URL, an empty secret list, ...)."""


class ListenerError(CircularoError):
    """Something failed in a listener's thread (storage, an on_event callback); raised in
    the caller's thread by the listener's next call."""


class TransportError(CircularoError, requests.RequestException):
    """Talking to the API failed; ``method`` and ``url`` (redacted) say which call."""

    def __init__(self, message: str, *, method: str = "", url: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.method = method
        self.url = url


class APIConnectionError(TransportError, requests.ConnectionError):
    """The API could not be reached (connection refused, reset, DNS failure, TLS error)."""


class APITimeoutError(APIConnectionError, requests.Timeout):
    """The API did not answer within the client's timeout."""


class UnexpectedResponseError(TransportError):
    """The API answered 2xx with a body that is not the JSON it should be."""


class APIStatusError(TransportError, requests.HTTPError):
    """The API answered with a non-2xx status.

    ``status_code`` is the HTTP status, ``body`` the parsed error body (a dict for the
    documented ``{"status": "ERROR", "code", "message", "field"}`` shape, else the raw
    text), and ``code``, ``field`` and ``api_message`` its fields when present.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        method: str = "",
        url: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(message, method=method, url=url, **kwargs)
        self.status_code = status_code
        self.body = body
        fields = body if isinstance(body, dict) else {}
        self.code: str | None = fields.get("code")
        self.field: str | None = fields.get("field")
        self.api_message: str | None = fields.get("message")


class BadRequestError(APIStatusError):
    """400: the request was invalid; ``field`` names the offending field when known."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, unknown or revoked, or the credentials are wrong."""


class TokenExpiredError(AuthenticationError):
    """401 with code ``TOKEN_EXPIRED``: the session token expired; log in again."""


class PermissionDeniedError(APIStatusError):
    """403: the user lacks the right for this call (e.g. ``use_webhooks``)."""


class NotFoundError(APIStatusError):
    """404: no such object, or not one this user may see."""


class ConflictError(APIStatusError):
    """409: the object changed since it was read (stale ``_version``)."""


class RateLimitError(APIStatusError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_for_status(status_code: int, body: Any) -> type[APIStatusError]:
    """The exception class for a non-2xx answer with this status and parsed body."""
    if status_code == 401 and isinstance(body, dict) and body.get("code") == "TOKEN_EXPIRED":
        return TokenExpiredError
    if status_code >= 500:
        return InternalServerError
    return _BY_STATUS.get(status_code, APIStatusError)
