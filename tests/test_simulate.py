"""simulate(): plausible, deterministic traffic through the real workflow and delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
import pytest

from circtoolkit.sandbox import FAST_RETRY_SCHEDULE, Sandbox
from circtoolkit.sandbox.receiver import Receiver

from .conftest import ACME_ADMIN

SECRET = "sim-secret"


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    with Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sb:
        yield sb


def shape(sandbox: Sandbox) -> list[tuple[int, str, str]]:
    """Each event as (which document, in creation order; event; actor): no ids, no times."""
    events = sandbox.events()
    order = {doc: n for n, doc in enumerate(dict.fromkeys(events["document_id"]))}
    return [(order[d], str(e), a) for d, e, a in
            zip(events["document_id"], events["event"], events["actor"], strict=True)]


def test_the_same_seed_gives_the_same_events() -> None:
    with Sandbox() as one, Sandbox() as two, Sandbox() as other:
        one.simulate(documents=60, seed=42, progress=False)
        two.simulate(documents=60, seed=42, progress=False)
        other.simulate(documents=60, seed=43, progress=False)
        assert shape(one) == shape(two)
        assert shape(one) != shape(other)


def test_the_same_seed_gives_the_same_payloads_apart_from_ids_and_times() -> None:
    bodies = []
    for _ in range(2):
        with Receiver(SECRET) as rx, Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sb:
            sb.client(ACME_ADMIN).create_webhook(rx.url, hmac_secret=SECRET)
            sb.simulate(documents=25, seed=5, organization="Acme", progress=False)
            sb.wait_for_deliveries(30)
            payloads = sorted((json.loads(r.body) for r in rx.requests),
                              key=lambda p: p["timestamp"])  # arrival order may differ
        ids = {doc: n for n, doc in enumerate(dict.fromkeys(p["documentId"] for p in payloads))}
        bodies.append(sorted((ids[p["documentId"]], p["event"], p["actor"]) for p in payloads))
    assert bodies[0] == bodies[1]
    assert len(bodies[0]) > 100


def test_outcomes_are_a_plausible_mix(fresh: Sandbox) -> None:
    report = fresh.simulate(documents=300, seed=1, progress=False)
    assert report.documents == 300 and len(report.document_ids) == 300
    assert sum(report.outcomes.values()) == 300
    assert report.outcomes["completed"] > 150
    for outcome in ("rejected", "expired", "cancelled"):
        assert report.outcomes[outcome] >= 5, report.outcomes
    assert "pending" not in report.outcomes and "draft" not in report.outcomes
    assert report.events["documentCreated"] == 300
    # deleted documents were completed, rejected, expired or cancelled before
    assert report.outcomes["completed"] <= report.events["documentCompleted"] <= (
        report.outcomes["completed"] + report.outcomes.get("deleted", 0))
    assert report.events["signRequest"] >= report.events["documentSigned"]
    assert report.total_events == len(fresh.events())
    per_document = fresh.events().groupby("document_id", observed=True)["event"]
    signers = per_document.apply(lambda e: (e == "signRequest").sum())
    assert set(signers.unique()) <= {1, 2, 3, 4, 5}
    assert signers.mean() > 1.3


def test_event_times_spread_over_the_span_and_each_lifecycle_is_ordered(fresh: Sandbox) -> None:
    report = fresh.simulate(documents=100, seed=3, span=86400, progress=False)
    events = fresh.events()
    assert events["timestamp"].min() >= pd.Timestamp(report.started_at)
    assert events["timestamp"].max() <= pd.Timestamp(report.ended_at)
    assert (events["timestamp"].max() - events["timestamp"].min()) > pd.Timedelta(hours=12)
    for _, lifecycle in events.groupby("document_id"):
        assert lifecycle["timestamp"].is_monotonic_increasing
        assert lifecycle["event"].iloc[0] == "documentCreated"


def test_simulated_documents_are_real_documents(fresh: Sandbox) -> None:
    report = fresh.simulate(documents=20, seed=9, organization="Acme", progress=False)
    client = fresh.client(ACME_ADMIN)
    events = fresh.events()
    deleted = set(events.loc[events["event"] == "documentDeleted", "document_id"])
    statuses = {client.get_document(d)["status"] for d in report.document_ids
                if d not in deleted}
    assert statuses <= {"completed", "rejected", "expired", "cancelled"}
    assert len(statuses) >= 2


def test_every_simulated_delivery_arrives_verified(fresh: Sandbox) -> None:
    with Receiver(SECRET) as rx:
        fresh.client(ACME_ADMIN).create_webhook(rx.url, hmac_secret=SECRET)
        report = fresh.simulate(documents=100, seed=11, organization="Acme", progress=False)
        fresh.wait_for_deliveries(30)
        assert report.deliveries == report.total_events == len(rx.requests)
        assert all(r.verified for r in rx.requests)


def test_progress_bar_is_shown(fresh: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    fresh.simulate(documents=5, seed=1)
    assert "Simulating 5 documents" in capsys.readouterr().err
    fresh.simulate(documents=5, seed=1, progress=False)
    assert capsys.readouterr().err == ""


def test_bad_arguments(fresh: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown organization"):
        fresh.simulate(documents=1, organization="Initech", progress=False)
    with pytest.raises(ValueError, match=">= 0"):
        fresh.simulate(documents=-1, progress=False)
    assert fresh.simulate(documents=0, progress=False).total_events == 0
