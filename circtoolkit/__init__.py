"""circtoolkit: manage, receive, verify and analyse Circularo webhooks from Python and Jupyter.

The core (``signing``, ``models``, ``client``, ``errors``, ``store``) imports no server
and no widget; ``Sandbox``, ``Listener`` and ``EventStore`` load on first use.
"""

from __future__ import annotations

import logging
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
    ListenerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TokenExpiredError,
    TransportError,
    UnexpectedResponseError,
)
from .models import EVENT_TYPES, WEBHOOK_TYPES, ApiKey, Webhook, WebhookList
from .signing import SIGNATURE_HEADER, Verifier, sign, verify

if TYPE_CHECKING:
    from .listener import Listener
    from .sandbox import Sandbox
    from .store import EventStore

__version__ = "0.1.0"

# a library logs, it does not print: without a handler of yours, nothing reaches stderr
logging.getLogger(__name__).addHandler(logging.NullHandler())

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
    "EventStore",
    "Exchange",
    "InternalServerError",
    "Listener",
    "ListenerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Sandbox",
    "TokenExpiredError",
    "TransportError",
    "UnexpectedResponseError",
    "Verifier",
    "Webhook",
    "WebhookList",
    "__version__",
    "sign",
    "verify",
]


_LAZY = {"Sandbox": "sandbox", "Listener": "listener", "EventStore": "store"}


def __getattr__(name: str) -> Any:
    """Servers (and pandas) load on first use, so ``import circtoolkit`` stays light."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'circtoolkit' has no attribute {name!r}")
