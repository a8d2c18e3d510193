"""Document lifecycles from webhook events: tables, and charts that read well in a notebook.

Every function takes the events as a DataFrame with ``documentId``, ``event``, ``actor``
and ``timestamp`` columns - ``listener.events``, ``EventStore(...).events``, or the
sandbox's ``sb.events()`` (whose ``document_id`` is accepted too). Times are the
notifications' own ``timestamp``s, so a simulation's compressed clock reads as days.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "FINAL_STATUSES",
    "event_counts",
    "funnel",
    "lifecycle",
    "plot_funnel",
    "plot_time_to_complete",
    "plot_timeline",
]

_ENDINGS = {"documentCompleted": "completed", "signRejected": "rejected",
            "signExpired": "expired", "signCancelled": "cancelled",
            "documentDeleted": "deleted"}
FINAL_STATUSES = ("completed", "rejected", "expired", "cancelled", "deleted", "pending",
                  "draft")
_LIFECYCLE_COLUMNS = ["created", "first_sign_request", "sign_requests", "signatures",
                      "completed", "rejected", "expired", "cancelled", "deleted",
                      "last_event", "events", "time_to_complete", "final_status"]


def _normalised(events: pd.DataFrame) -> pd.DataFrame:
    if "documentId" not in events.columns and "document_id" in events.columns:
        events = events.rename(columns={"document_id": "documentId"})
    missing = {"documentId", "event", "timestamp"} - set(events.columns)
    if missing:
        raise ValueError(f"events need the columns documentId, event and timestamp; "
                         f"missing: {', '.join(sorted(missing))}")
    frame = events[["documentId", "event", "timestamp"]].copy()
    frame["event"] = frame["event"].astype(str)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def lifecycle(events: pd.DataFrame) -> pd.DataFrame:
    """One row per document (indexed by ``documentId``), oldest first.

    Columns: ``created``, ``first_sign_request``, ``completed``, ``rejected``,
    ``expired``, ``cancelled``, ``deleted`` and ``last_event`` (UTC times, NaT when it
    did not happen); ``sign_requests``, ``signatures`` and ``events`` (counts);
    ``time_to_complete`` (Timedelta from created to completed); ``final_status``, the
    latest ending (completed, rejected, expired, cancelled or deleted), else
    ``pending`` once sent for signing, else ``draft``.
    """
    frame = _normalised(events)
    if frame.empty:
        empty = pd.DataFrame(columns=_LIFECYCLE_COLUMNS)
        empty.index.name = "documentId"
        return empty
    grouped = frame.groupby("documentId", sort=False)
    firsts = frame.pivot_table(index="documentId", columns="event", values="timestamp",
                               aggfunc="min")
    counts = frame.groupby(["documentId", "event"]).size().unstack(fill_value=0)

    def first(name: str) -> pd.Series:
        if name in firsts.columns:
            return firsts[name]
        return pd.Series(pd.NaT, index=firsts.index, dtype="datetime64[ns, UTC]")

    def count(name: str) -> pd.Series:
        return counts[name] if name in counts.columns else pd.Series(0, index=counts.index)

    table = pd.DataFrame({
        "created": first("documentCreated"),
        "first_sign_request": first("signRequest"),
        "sign_requests": count("signRequest"),
        "signatures": count("documentSigned"),
        **{status: first(name) for name, status in _ENDINGS.items()},
    })
    table["last_event"] = grouped["timestamp"].max()
    table["events"] = grouped.size()
    table["time_to_complete"] = table["completed"] - table["created"]
    endings = frame[frame["event"].isin(list(_ENDINGS))]
    latest = (endings.sort_values("timestamp", kind="stable")  # ties: the later arrival
              .groupby("documentId")["event"].last()
              .map(_ENDINGS))
    status = latest.reindex(table.index)
    status = status.where(status.notna(), table["sign_requests"].gt(0).map(
        {True: "pending", False: "draft"}))
    table["final_status"] = pd.Categorical(status, categories=list(FINAL_STATUSES))
    table.index.name = "documentId"
    order = table["created"].fillna(table["last_event"])
    return table.loc[order.sort_values(kind="stable").index, _LIFECYCLE_COLUMNS]


def event_counts(events: pd.DataFrame, freq: str = "1h") -> pd.DataFrame:
    """How many events of each type per ``freq`` (a pandas offset such as "15min",
    "1h", "1D"): one row per period, one column per event type, zeros included."""
    frame = _normalised(events)
    if frame.empty:
        return pd.DataFrame()
    table = (frame.assign(count=1)
             .pivot_table(index="timestamp", columns="event", values="count", aggfunc="sum",
                          fill_value=0)
             .resample(freq).sum())  # any pandas frequency, empty periods included
    table.index.name = "period"
    table.columns.name = "event"
    return table


def funnel(events: pd.DataFrame) -> pd.DataFrame:
    """Documents reaching each stage: created, sent for signing, signed by someone,
    completed - each stage counting only documents seen in the one before (a listener
    started mid-flow misses some creations) - with the share of those created and of
    the stage before."""
    table = lifecycle(events)
    created = table["created"].notna()
    sent = created & table["sign_requests"].gt(0)
    signed = sent & table["signatures"].gt(0)
    stages = {  # nested: each stage counts only documents that went through the one before
        "created": created,
        "sent for signing": sent,
        "signed by someone": signed,
        "completed": signed & table["completed"].notna(),
    }
    documents = pd.Series({stage: int(mask.sum()) for stage, mask in stages.items()})
    result = pd.DataFrame({"documents": documents})
    first = documents.iloc[0] or 1
    result["of_created"] = documents / first
    previous = documents.shift(1).fillna(documents.iloc[0]).replace(0, 1)
    result["of_previous"] = documents / previous
    result.index.name = "stage"
    return result


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, created = plt.subplots(figsize=size, layout="constrained")
    return created


def plot_timeline(events: pd.DataFrame, freq: str = "1h", *, ax: Axes | None = None,
                  kinds: list[str] | None = None) -> Axes:
    """Events per period over time, one line per event type (or only ``kinds``)."""
    table = event_counts(events, freq)
    if kinds is not None:
        table = table[[kind for kind in kinds if kind in table.columns]]
    ax = _axes(ax, (10, 4))
    import matplotlib as mpl

    colours = mpl.colormaps["tab20"]  # eleven event types: ten colours would repeat
    for number, column in enumerate(table.columns):
        ax.plot(table.index, table[column], label=column, linewidth=1.4,
                marker="o" if len(table) == 1 else None,  # one period: a visible point
                color=colours(number * 2 % 20 + number * 2 // 20))
    ax.set_title("Document events over time")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"events per {freq}")
    ax.grid(alpha=0.3)
    if len(table.columns):
        ax.legend(loc="upper left", fontsize="small", ncol=2, frameon=False)
    ax.figure.autofmt_xdate()
    return ax


def plot_funnel(events: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """The signing funnel as horizontal bars, each labelled with its count and share."""
    table = funnel(events)
    ax = _axes(ax, (8, 3))
    stages = list(table.index)[::-1]
    values = table["documents"].loc[stages]
    bars = ax.barh(stages, values, color="#4c72b0")
    for bar, (count, share) in zip(bars, table.loc[stages, ["documents", "of_created"]]
                                   .itertuples(index=False), strict=True):
        ax.annotate(f"{count:,}  ({share:.0%})", (bar.get_width(), bar.get_y()
                                                 + bar.get_height() / 2),
                    xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_title("Signing funnel")
    ax.set_xlabel("documents")
    ax.set_ylabel("stage")
    ax.set_xlim(0, max(1, int(values.max())) * 1.25)
    return ax


def plot_time_to_complete(events: pd.DataFrame, *, unit: str = "h", bins: int = 30,
                          ax: Axes | None = None) -> Axes:
    """A histogram of the time from creation to completion, with the median marked."""
    table = lifecycle(events)
    durations = table["time_to_complete"].dropna() / pd.Timedelta(1, unit=unit)
    ax = _axes(ax, (8, 4))
    labels: dict[str, Any] = {"h": "hours", "min": "minutes", "D": "days", "s": "seconds"}
    if len(durations):
        ax.hist(durations, bins=bins, color="#55a868", edgecolor="white")
        median = float(durations.median())
        ax.axvline(median, color="#c44e52", linestyle="--",
                   label=f"median {median:.1f} {labels.get(unit, unit)}")
        ax.legend(frameon=False)
    ax.set_title(f"Time to complete ({len(durations):,} documents)")
    ax.set_xlabel(f"time from creation to completion ({labels.get(unit, unit)})")
    ax.set_ylabel("documents")
    return ax
