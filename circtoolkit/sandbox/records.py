"""The sandbox's events and delivery attempts as pandas DataFrames."""

from __future__ import annotations

import sqlite3

import pandas as pd

from ..models import EVENT_TYPES
from .state import SandboxState

__all__ = ["deliveries_frame", "events_frame"]

_STATES = ["pending", "delivered", "failed", "gone", "cancelled"]


def _query(state: SandboxState, sql: str) -> pd.DataFrame:
    with state.lock:
        try:
            cursor = state.db.execute(sql)
        except sqlite3.ProgrammingError:
            raise RuntimeError("this sandbox was stopped and its database closed; read "
                               "events and deliveries before stop(), or use db=FILE") from None
        columns = [d[0] for d in cursor.description]
        return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)


def _utc_seconds(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column.astype("float64"), unit="s", utc=True)


def events_frame(state: SandboxState) -> pd.DataFrame:
    """One row per event: event_id, document_id, event (categorical), actor, timestamp
    (tz-aware UTC), organization_id."""
    frame = _query(state, "SELECT id AS event_id, document_id, event, actor, timestamp,"
                          " organization_id FROM events ORDER BY seq")
    frame["event"] = pd.Categorical(frame["event"], categories=list(EVENT_TYPES))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame


def deliveries_frame(state: SandboxState, *, attempts: bool = True) -> pd.DataFrame:
    """One row per attempt (or per delivery): what was sent where, and how it went.

    Per attempt: delivery_id, webhook_id, callback_url, event, document_id, attempt,
    attempted_at (UTC), status_code (nullable int), latency_ms, error, state (the
    delivery's state now). Per delivery: the same without the attempt columns, plus
    attempts (count) and next_attempt_at.
    """
    base = ("SELECT d.id AS delivery_id, d.webhook_id, d.callback_url, e.event, e.document_id,"
            " {extra} FROM deliveries d JOIN events e ON e.seq = d.event_seq")
    if attempts:
        frame = _query(state, base.format(
            extra="a.attempt, a.started AS attempted_at, a.status_code, a.latency_ms, a.error,"
                  " d.state") + " JOIN attempts a ON a.delivery_seq = d.seq"
                                " ORDER BY d.seq, a.attempt")
        frame["attempted_at"] = _utc_seconds(frame["attempted_at"])
        frame["status_code"] = frame["status_code"].astype("Int64")
        frame["attempt"] = frame["attempt"].astype("int64")
        frame["latency_ms"] = frame["latency_ms"].astype("float64")
    else:
        frame = _query(state, base.format(
            extra="d.state, d.attempts, CASE WHEN d.state = 'pending' THEN d.next_at END"
                  " AS next_attempt_at") + " ORDER BY d.seq")
        frame["attempts"] = frame["attempts"].astype("int64")
        frame["next_attempt_at"] = _utc_seconds(frame["next_attempt_at"])
    frame["event"] = pd.Categorical(frame["event"], categories=list(EVENT_TYPES))
    frame["state"] = pd.Categorical(frame["state"], categories=_STATES)
    return frame
