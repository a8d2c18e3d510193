"""The widgets' logic as plain functions: testable without a browser or a kernel."""

from __future__ import annotations

import html
import secrets
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from .._redact import mask
from ..models import EVENT_TYPES, Webhook, format_timestamp

__all__ = ["check_callback_url", "filter_events", "generate_secret", "html_table",
           "monitor_counts", "webhook_rows"]


def generate_secret(length: int = 32) -> str:
    """A fresh HMAC secret: URL-safe random characters."""
    return secrets.token_urlsafe(length)[:length]


def check_callback_url(url: str) -> str | None:
    """Why ``url`` cannot be a callback URL, or None if it can (checked before sending)."""
    url = url.strip()
    if not url:
        return "the callback URL is empty"
    if any(c.isspace() for c in url):
        return "the callback URL contains spaces"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"the callback URL is malformed: {exc}"
    if parts.scheme not in ("http", "https"):
        return "the callback URL must start with http:// or https://"
    if not parts.hostname:
        return "the callback URL has no host"
    return None


def webhook_rows(webhooks: Iterable[Webhook], organizations: dict[str, str] | None = None,
                 *, reveal: bool = False) -> list[dict[str, str]]:
    """The manager's table rows: secrets masked unless ``reveal`` (creators only see
    theirs anyway); organization ids shown by name when ``organizations`` knows them."""
    names = organizations or {}
    rows = []
    for hook in webhooks:
        if hook.hmac_secret is None:
            secret = "none (or not yours)"  # noqa: S105 - a label, not a secret
        else:
            secret = hook.hmac_secret if reveal else mask(hook.hmac_secret, keep=0)
        rows.append({"id": hook.id, "type": hook.type,
                     "organization": names.get(hook.name, hook.name),
                     "callback URL": hook.callback_url, "creator": hook.creator,
                     "created": format_timestamp(hook.create_date), "secret": secret})
    return rows


def html_table(rows: Sequence[dict[str, Any]], *, empty: str = "nothing yet") -> str:
    """A small HTML table of dicts, every value escaped."""
    if not rows:
        return f"<i>{html.escape(empty)}</i>"
    columns = list(rows[0])
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(c)}</th>"
                   for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(row[c]))}</td>"
                         for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def monitor_counts(events: pd.DataFrame, stats: dict[str, int]) -> dict[str, int]:
    """Counters for the monitor: one per event type seen, then verified, unverified,
    duplicates and rejected requests."""
    counts: dict[str, int] = {}
    seen = events["event"].astype(str).value_counts() if len(events) else pd.Series(dtype=int)
    for name in [*EVENT_TYPES, *(n for n in seen.index if n not in EVENT_TYPES)]:
        if seen.get(name, 0):
            counts[name] = int(seen[name])
    verified = int(events["verified"].sum()) if len(events) else 0
    counts["verified"] = verified
    counts["unverified"] = len(events) - verified
    counts["duplicates"] = stats.get("duplicate", 0)
    counts["rejected"] = stats.get("rejected", 0)
    return counts


def filter_events(events: pd.DataFrame, *, event: str | None = None,
                  document: str | None = None) -> pd.DataFrame:
    """The events of one type (None: all) whose documentId contains ``document``."""
    view = events
    if event:
        view = view[view["event"].astype(str) == event]
    if document:
        view = view[view["documentId"].str.contains(document.strip(), regex=False)]
    return view
