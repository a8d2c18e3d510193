"""Keeping tokens and secrets out of messages, reprs and log lines."""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["install_log_redaction", "mask", "redact", "redact_json"]

_TOKEN_IN_QUERY = re.compile(r"(?i)([?&;]token=)[^&\s'\"<>#)]*")
_KEY_IN_PATH = re.compile(r"(/api/key/)[^/?#\s'\"<>)]+")
SECRET_FIELDS = frozenset({"token", "password", "hmacSecret", "hmac_secret"})


def mask(secret: str | None, *, keep: int = 4) -> str:
    """A display form of a secret: ``****`` plus its last ``keep`` characters when it is
    long enough (24+ characters, so at most a sixth shows) and nothing of it otherwise."""
    if not secret:
        return "<none>"
    if keep and len(secret) >= 24:
        return "****" + secret[-keep:]
    return "****"


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every ``token=`` query value, every API key in a ``/api/key/`` path,
    and every given secret masked."""
    text = _TOKEN_IN_QUERY.sub(r"\1****", text)
    text = _KEY_IN_PATH.sub(r"\1****", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, mask(secret))
    return text


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with the values of secret-bearing fields masked."""
    if isinstance(value, dict):
        return {
            key: (mask(item, keep=0) if key in SECRET_FIELDS and isinstance(item, str)
                  else redact_json(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


class _RedactingFilter(logging.Filter):
    """Masks ``token=`` query values in a record's message and string arguments.

    Arguments are redacted in place (formatters such as uvicorn's access formatter
    unpack them); if the rendered message still leaks, it is frozen redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix; let logging report it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _RedactingFilter()
_URLLIB3_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "uvicorn.access",
    "uvicorn.error",
)


def install_log_redaction() -> None:
    """Mask ``token=`` in the log lines of urllib3, requests and uvicorn (idempotent).

    urllib3 logs every request line, query string included, at DEBUG; logger-level
    filters run before any handler sees the record, so no handler can leak it.
    """
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
