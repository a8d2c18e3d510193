"""HMAC-SHA256 signatures of webhook bodies, as Circularo sends them.

Circularo puts the lowercase hex HMAC-SHA256 of the raw request body, keyed with the
webhook's ``hmacSecret`` (UTF-8), in the ``x-circularo-signature`` header. Sign and
verify the bytes exactly as sent or received, never re-serialised JSON.

What :func:`verify` accepts, deliberately: surrounding whitespace (HTTP strips it from
header values anyway) and upper-case hex digits (hex is case-insensitive). Anything else
that is not exactly 64 hex digits - a ``sha256=`` prefix, a truncated value - fails.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from .errors import ConfigurationError

__all__ = ["SIGNATURE_HEADER", "Verifier", "sign", "verify"]

SIGNATURE_HEADER = "x-circularo-signature"

_HEX_DIGITS = frozenset("0123456789abcdef")
_SIGNATURE_LENGTH = 64

Body = bytes | bytearray | memoryview | str


def _body_bytes(body: Body) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        key = secret.encode("utf-8")
    else:
        raise ConfigurationError(f"an HMAC secret must be str or bytes, not {type(secret).__name__}")
    if not key:
        raise ConfigurationError("an HMAC secret must not be empty")
    return key


def sign(body: Body, secret: str | bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret`` (UTF-8 if str)."""
    return hmac.new(_secret_bytes(secret), _body_bytes(body), hashlib.sha256).hexdigest()


class Verifier:
    """Checks signatures against a fixed set of secrets (one, or several for rotation).

    The keys are encoded once, so a receiver's hot path pays only for the HMACs and the
    constant-time comparisons: every secret is always tried, so the time taken tells
    nothing about which one matched or how much of a signature was right.
    """

    __slots__ = ("_keys",)

    def __init__(self, secrets: str | bytes | Iterable[str | bytes]) -> None:
        keys = ([_secret_bytes(secrets)] if isinstance(secrets, str | bytes)
                else [_secret_bytes(s) for s in secrets])
        if not keys:
            raise ConfigurationError("a verifier needs at least one secret")
        self._keys = tuple(keys)

    def verify_header(self, body: bytes, signature: bytes) -> bool:
        """The receiver's fast path: ``signature`` as the raw header bytes.

        Hex digests compared as bytes, after the same trimming and lower-casing as
        ``verify``; a value of the wrong length or with non-hex digits cannot match.
        """
        candidate = signature.strip().lower()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(
                hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii"), candidate)
        return matched

    def __repr__(self) -> str:
        return f"Verifier(<{len(self._keys)} secret(s), hidden>)"

    def with_secret(self, secret: str | bytes) -> Verifier:
        """A verifier that also accepts ``secret`` (rotation: add the new one first)."""
        combined = Verifier.__new__(Verifier)
        combined._keys = (*self._keys, _secret_bytes(secret))
        return combined

    def verify(self, body: Body, signature: str | bytes | None) -> bool:
        """Whether ``signature`` is the HMAC of ``body`` under any of the secrets."""
        if signature is None:
            return False
        if isinstance(signature, bytes):
            try:
                signature = signature.decode("ascii")
            except UnicodeDecodeError:
                return False
        candidate = signature.strip().lower()
        if len(candidate) != _SIGNATURE_LENGTH or not _HEX_DIGITS.issuperset(candidate):
            return False
        data = _body_bytes(body)
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(hmac.new(key, data, hashlib.sha256).hexdigest(),
                                           candidate)
        return matched


def verify(
    body: Body,
    signature: str | bytes | None,
    secrets: str | bytes | Iterable[str | bytes],
) -> bool:
    """Whether ``signature`` is the HMAC of ``body`` under any one of ``secrets``.

    Several secrets allow rotation: accept the old and the new one while senders move
    over. Every secret is checked, each with a constant-time comparison, so the time
    taken says nothing about which one matched or how much of the signature was right.
    For many checks against the same secrets, build a :class:`Verifier` once.
    """
    return Verifier(secrets).verify(body, signature)
