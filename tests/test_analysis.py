"""Lifecycle analysis on the events a simulation sends, and its charts."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib
import pandas as pd
import pytest

from circtoolkit import analysis
from circtoolkit.listener import Listener
from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, Sandbox
from circtoolkit.sandbox.simulate import SimulationReport

from .conftest import ACME_ADMIN

matplotlib.use("Agg")
SECRET = "analysis-secret"


@pytest.fixture(scope="module")
def simulated() -> Iterator[tuple[pd.DataFrame, SimulationReport]]:
    """The events of a 200-document simulation, as a Listener received them."""
    with Listener(SECRET) as listener, Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
        sandbox.client(ACME_ADMIN).create_webhook(listener.url, hmac_secret=SECRET)
        report = sandbox.simulate(documents=200, seed=21, organization="Acme", progress=False)
        sandbox.wait_for_deliveries(30)
        listener.wait_for(report.deliveries, timeout=20)
        yield listener.events, report


def test_lifecycle_has_a_row_per_document_and_the_sandbox_outcomes(simulated) -> None:
    events, report = simulated
    table = analysis.lifecycle(events)
    assert len(table) == report.documents
    assert set(table.index) == set(report.document_ids)
    statuses = table["final_status"].value_counts()
    assert {k: v for k, v in statuses.items() if v} == report.outcomes
    completed = table[table["completed"].notna()]
    assert (completed["time_to_complete"] > pd.Timedelta(0)).all()
    assert (completed["signatures"] >= 1).all()
    assert (table["created"] <= table["last_event"]).all()
    assert table["created"].is_monotonic_increasing
    assert table["events"].sum() == len(events)


def test_lifecycle_of_hand_made_events() -> None:
    stamp = pd.Timestamp("2026-01-01T09:00:00Z")
    events = pd.DataFrame({
        "documentId": ["a", "a", "a", "a", "b", "b", "c"],
        "event": ["documentCreated", "signRequest", "documentSigned", "documentCompleted",
                  "documentCreated", "signRequest", "documentCreated"],
        "actor": ["o", "s", "s", "s", "o", "s", "o"],
        "timestamp": [stamp, stamp + pd.Timedelta(minutes=5), stamp + pd.Timedelta(hours=2),
                      stamp + pd.Timedelta(hours=2), stamp, stamp, stamp],
    })
    table = analysis.lifecycle(events)
    assert table["final_status"].astype(str).to_dict() == {"a": "completed", "b": "pending",
                                                           "c": "draft"}
    assert table.loc["a", "time_to_complete"] == pd.Timedelta(hours=2)
    assert pd.isna(table.loc["b", "time_to_complete"])
    sandbox_style = events.rename(columns={"documentId": "document_id"})
    assert analysis.lifecycle(sandbox_style).equals(table)
    with pytest.raises(ValueError, match="missing: timestamp"):
        analysis.lifecycle(events.drop(columns=["timestamp"]))
    assert analysis.lifecycle(events.iloc[:0]).empty


def test_event_counts_cover_every_event_once(simulated) -> None:
    events, _ = simulated
    hourly = analysis.event_counts(events, "1h")
    assert int(hourly.to_numpy().sum()) == len(events)
    assert set(hourly.columns) == set(events["event"].astype(str))
    assert (hourly.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()
    daily = analysis.event_counts(events, "1D")
    assert daily.sum().equals(hourly.sum())


def test_funnel_narrows(simulated) -> None:
    events, report = simulated
    table = analysis.funnel(events)
    assert list(table.index) == ["created", "sent for signing", "signed by someone",
                                 "completed"]
    assert table["documents"].iloc[0] == report.documents
    assert table["documents"].is_monotonic_decreasing
    assert table["of_created"].iloc[0] == 1.0
    assert 0 < table["of_previous"].iloc[-1] <= 1


def test_charts_are_labelled_and_return_their_axes(simulated) -> None:
    events, _ = simulated
    timeline = analysis.plot_timeline(events, "6h")
    assert timeline.get_xlabel() == "time (UTC)"
    assert timeline.get_ylabel() == "events per 6h"
    assert len(timeline.get_lines()) == events["event"].nunique()
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str)
               else line.get_color() for line in timeline.get_lines()}
    assert len(colours) == len(timeline.get_lines())  # every event type its own colour
    bars = analysis.plot_funnel(events)
    assert bars.get_xlabel() == "documents"
    assert [t.get_text() for t in bars.get_yticklabels()][-1] == "created"
    assert any("100%" in text.get_text() for text in bars.texts)
    histogram = analysis.plot_time_to_complete(events)
    assert histogram.get_xlabel() == "time from creation to completion (hours)"
    assert "median" in histogram.get_legend().get_texts()[0].get_text()
    import matplotlib.pyplot as plt

    _, axes = plt.subplots()
    assert analysis.plot_funnel(events, ax=axes) is axes
    plt.close("all")


def test_ties_nesting_and_any_frequency() -> None:
    stamp = pd.Timestamp("2026-01-01T09:00:00Z")
    events = pd.DataFrame({
        "documentId": ["a", "a", "a", "b"],
        "event": ["documentCreated", "documentCompleted", "documentDeleted", "documentSigned"],
        "actor": ["o", "s", "o", "s"],
        "timestamp": [stamp, stamp + pd.Timedelta(hours=1), stamp + pd.Timedelta(hours=1),
                      stamp + pd.Timedelta(days=9)],
    })
    table = analysis.lifecycle(events)
    for _ in range(20):  # a tie goes to the later arrival, every time
        assert analysis.lifecycle(events).loc["a", "final_status"] == "deleted"
    assert table.loc["b", "final_status"] == "draft"  # no sign request seen, no ending
    stages = analysis.funnel(events)["documents"].tolist()
    assert stages == [1, 0, 0, 0]  # "b" was never seen created: it is in no stage
    weekly = analysis.event_counts(events, "W")
    assert int(weekly.to_numpy().sum()) == 4 and len(weekly) == 2
    ax = analysis.plot_timeline(events.iloc[:1], "1D")
    assert ax.get_lines()[0].get_marker() == "o"
