"""Plain data: webhooks, API keys, event names and scopes, as the Circularo API shapes them.

Each model converts from the API's camelCase JSON (``from_api``) and back (``to_api``);
reprs mask secrets so that printing a model in a notebook never shows one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, overload

from ._redact import mask

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EVENT_TYPES",
    "WEBHOOK_TYPES",
    "ApiKey",
    "Webhook",
    "WebhookList",
    "WebhookType",
    "format_epoch",
    "format_timestamp",
    "parse_timestamp",
]

WebhookType = Literal["organization", "tenant"]
WEBHOOK_TYPES: Final[tuple[str, ...]] = ("organization", "tenant")

EVENT_TYPES: Final[tuple[str, ...]] = (
    "documentCreated",
    "documentEdited",
    "documentDeleted",
    "signRequest",
    "signDelegated",
    "signRejected",
    "signExpired",
    "signCancelled",
    "documentSigned",
    "documentCompleted",
    "documentSimpleActionExecuted",
)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as Circularo writes it: 2023-07-19T10:30:25.542Z."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def format_epoch(seconds: float) -> str:
    """``format_timestamp`` of a POSIX time (seconds since the epoch)."""
    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


def parse_timestamp(text: str) -> datetime:
    """A tz-aware UTC datetime from an ISO 8601 string such as 2023-07-19T10:30:25.542Z."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook subscription. ``hmac_secret`` is None unless you created it."""

    id: str
    creator: str
    create_date: datetime
    type: str
    name: str
    callback_url: str
    hmac_secret: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        secret = mask(self.hmac_secret, keep=0) if self.hmac_secret else None
        return (
            f"Webhook(id={self.id!r}, creator={self.creator!r}, "
            f"create_date={format_timestamp(self.create_date)!r}, type={self.type!r}, "
            f"name={self.name!r}, callback_url={self.callback_url!r}, hmac_secret={secret!r})"
        )

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Webhook:
        """Build from one webhook object of the API (``POST /webhooks`` or ``results[i]``)."""
        return cls(
            id=data["id"],
            creator=data["creator"],
            create_date=parse_timestamp(data["createDate"]),
            type=data["type"],
            name=data["name"],
            callback_url=data["callbackUrl"],
            hmac_secret=data.get("hmacSecret"),
        )

    def to_api(self) -> dict[str, Any]:
        """The API's JSON shape (``hmacSecret`` only when known)."""
        data = {
            "id": self.id,
            "creator": self.creator,
            "createDate": format_timestamp(self.create_date),
            "type": self.type,
            "name": self.name,
            "callbackUrl": self.callback_url,
        }
        if self.hmac_secret is not None:
            data["hmacSecret"] = self.hmac_secret
        return data

    @property
    def signed(self) -> bool:
        """Whether notifications carry ``x-circularo-signature`` (known to the creator only)."""
        return self.hmac_secret is not None


_WEBHOOK_COLUMNS = ("id", "creator", "create_date", "type", "name", "callback_url", "signed")


@dataclass(frozen=True, slots=True)
class WebhookList(Sequence[Webhook]):
    """The answer of ``GET /webhooks``: ``total`` and the webhooks, in API order."""

    total: int
    results: tuple[Webhook, ...]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WebhookList:
        """Build from ``{"total": n, "results": [...]}``."""
        return cls(
            total=int(data["total"]),
            results=tuple(Webhook.from_api(item) for item in data["results"]),
        )

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Webhook]:
        return iter(self.results)

    @overload
    def __getitem__(self, index: int) -> Webhook: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Webhook, ...]: ...
    def __getitem__(self, index: int | slice) -> Webhook | tuple[Webhook, ...]:
        return self.results[index]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per webhook; ``create_date`` tz-aware UTC, ``type`` categorical.
        Secrets are left out: the ``signed`` column says whether one is set."""
        import pandas as pd

        frame = pd.DataFrame(
            [
                (w.id, w.creator, w.create_date, w.type, w.name, w.callback_url, w.signed)
                for w in self.results
            ],
            columns=list(_WEBHOOK_COLUMNS),
        )
        frame["create_date"] = pd.to_datetime(frame["create_date"], utc=True)
        frame["type"] = pd.Categorical(frame["type"], categories=list(WEBHOOK_TYPES))
        frame["signed"] = frame["signed"].astype(bool)
        return frame


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A long-lived API key (``POST /api/key``); use ``key`` as a token. Masked in reprs."""

    key: str = field(repr=False)
    creator: str
    create_date: datetime

    def __repr__(self) -> str:
        return (
            f"ApiKey(key={mask(self.key)!r}, creator={self.creator!r}, "
            f"create_date={format_timestamp(self.create_date)!r})"
        )

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ApiKey:
        """Build from the answer of ``POST /api/key`` (its ``id`` is the key)."""
        return cls(key=data["id"], creator=data["creator"], create_date=parse_timestamp(data["createDate"]))
