"""circtoolkit: manage, receive, verify and analyse Circularo webhooks from Python and Jupyter.

The core (``signing``, ``models``, ``client``, ``errors``) imports no server and no
widget; ``Sandbox`` (an offline Circularo) is imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import DEFAULT_BASE_URL, CircularoClient, Exchange
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircularoError,
    ConfigurationError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TokenExpiredError,
    TransportError,
    UnexpectedResponseError,
)
from .models import EVENT_TYPES, WEBHOOK_TYPES, ApiKey, Webhook, WebhookList
from .signing import SIGNATURE_HEADER, sign, verify

if TYPE_CHECKING:
    from .sandbox import Sandbox

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "WEBHOOK_TYPES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ApiKey",
    "AuthenticationError",
    "BadRequestError",
    "CircularoClient",
    "CircularoError",
    "ConfigurationError",
    "ConflictError",
    "Exchange",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Sandbox",
    "TokenExpiredError",
    "TransportError",
    "UnexpectedResponseError",
    "Webhook",
    "WebhookList",
    "__version__",
    "sign",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from .sandbox import Sandbox

        return Sandbox
    raise AttributeError(f"module 'circtoolkit' has no attribute {name!r}")
