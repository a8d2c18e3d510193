"""Simulated document traffic: many documents driven through the real workflow.

A seeded plan gives every document an organization, an owner, one to four signers and
an outcome (about 76 % completed, 10 % rejected, 8 % expired, 6 % cancelled), with
human-looking delays (a signer answers in about two hours, give or take a lot; sign
requests are valid for three days) on a 7-day frame, scaled to ``span``. The plan's
steps then run in time order through :class:`Workflow` - the same permission, version
and event code the HTTP endpoints use - on a compressed clock: event times spread over
``span`` seconds ending now, but the run takes only as long as the work does.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .state import ACCOUNTS, ORGANIZATIONS
from .workflow import Workflow

__all__ = ["OUTCOMES", "SimulationReport", "simulate"]

OUTCOMES = {"completed": 76, "rejected": 10, "expired": 8, "cancelled": 6}
SIGNER_COUNTS = {1: 35, 2: 35, 3: 20, 4: 10}
NOMINAL_SPAN = 7 * 86400  # plans are made on a 7-day frame, then scaled to ``span``
VALIDITY = 3 * 86400
CREATION_WINDOW = 3 * 86400
TITLES = ("Employment contract", "NDA", "Purchase order", "Lease agreement", "Invoice approval",
          "Service agreement", "Consent form", "Supplier onboarding", "Expense report",
          "Board resolution")
BATCH = 64


@dataclass
class SimulationReport:
    """What a simulation did: documents by outcome, events by type, and timings."""

    documents: int
    seed: int | None
    outcomes: dict[str, int]
    events: dict[str, int]
    deliveries: int
    started_at: datetime
    ended_at: datetime
    elapsed: float
    document_ids: list[str] = field(repr=False, default_factory=list)

    @property
    def total_events(self) -> int:
        return sum(self.events.values())


def _members(organization: str) -> tuple[Any, list[Any]]:
    admin = next(a for a in ACCOUNTS if a.role == "org_admin" and a.organization == organization)
    return admin, [a for a in ACCOUNTS if a.role == "user" and a.organization == organization]


def _delay(rng: random.Random, median: float, sigma: float = 1.2) -> float:
    return rng.lognormvariate(math.log(median), sigma)


def _plan(rng: random.Random, index: int, organization: str
          ) -> list[tuple[float, str, dict[str, Any]]]:
    """The steps of one document: (seconds into the 7-day frame, step, arguments)."""
    owner, pool = _members(organization)
    count = min(rng.choices(list(SIGNER_COUNTS), weights=list(SIGNER_COUNTS.values()))[0],
                len(pool))
    signers = rng.sample(pool, count)
    outcome = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
    t = rng.uniform(0, CREATION_WINDOW)
    steps: list[tuple[float, str, dict[str, Any]]] = [
        (t, "create", {"account": owner, "title": f"{rng.choice(TITLES)} #{index + 1}"})]
    if rng.random() < 0.15:
        t += rng.expovariate(1 / 1800)
        steps.append((t, "edit", {"account": owner,
                                  "title": f"{rng.choice(TITLES)} #{index + 1} (rev. 2)"}))
    if rng.random() < 0.1:
        reviewer = rng.choice(pool)
        t += rng.expovariate(1 / 600)
        steps.append((t, "share", {"account": owner, "purpose": "review",
                                   "recipients": [reviewer.username]}))
        t += _delay(rng, 1800)
        steps.append((t, "act", {"account": reviewer, "action": "review"}))
    t += rng.expovariate(1 / 600)
    shared = t
    steps.append((t, "share", {"account": owner, "purpose": "sign",
                               "recipients": [s.username for s in signers],
                               "valid_until": shared + VALIDITY}))
    answers = sorted((min(shared + _delay(rng, 7200), shared + VALIDITY - 60), s)
                     for s in signers)
    if outcome == "completed":
        outsiders = [p for p in pool if p not in signers]
        for number, (when, signer) in enumerate(answers):
            if number == 0 and outsiders and rng.random() < 0.08:
                delegate = rng.choice(outsiders)
                steps.append((when, "act", {"account": signer, "action": "delegate",
                                            "to": delegate.username}))
                later = min(when + _delay(rng, 3600), shared + VALIDITY - 30)
                steps.append((later, "act", {"account": delegate, "action": "sign"}))
            else:
                steps.append((when, "act", {"account": signer, "action": "sign"}))
    elif outcome == "rejected":
        rejecter = rng.randrange(len(answers))
        for number, (when, signer) in enumerate(answers[:rejecter + 1]):
            steps.append((when, "act", {"account": signer,
                                        "action": "reject" if number == rejecter else "sign"}))
    elif outcome == "expired":
        for when, signer in answers[:rng.randrange(len(answers))]:
            steps.append((when, "act", {"account": signer, "action": "sign"}))
        steps.append((shared + VALIDITY, "expire", {}))
    else:  # cancelled
        cancel_at = shared + _delay(rng, 5400)
        for when, signer in answers:
            if when < cancel_at and len([s for s in steps if s[1] == "act"]) < count - 1:
                steps.append((when, "act", {"account": signer, "action": "sign"}))
        steps.append((max(cancel_at, steps[-1][0]), "cancel", {"account": owner}))
    steps.sort(key=lambda step: step[0])
    if rng.random() < 0.04:
        steps.append((min(steps[-1][0] + _delay(rng, 43200), NOMINAL_SPAN), "delete",
                      {"account": owner}))
    return steps


def simulate(workflow: Workflow, *, documents: int, seed: int | None = None,
             organization: str | None = None, span: float = 7 * 86400,
             progress: bool = True) -> SimulationReport:
    """Run ``documents`` planned documents through ``workflow``; see the module doc."""
    if documents < 0:
        raise ValueError("documents must be >= 0")
    if organization is not None and organization not in ORGANIZATIONS:
        raise ValueError(f"unknown organization {organization!r}; "
                         f"one of {', '.join(ORGANIZATIONS)}")
    rng = random.Random(seed)
    end = workflow.state.clock()
    start = end - span
    scale = span / NOMINAL_SPAN
    organizations = [organization] if organization else list(ORGANIZATIONS)
    queue: list[tuple[float, int, int, str, dict[str, Any]]] = []
    for index in range(documents):
        steps = _plan(rng, index, rng.choice(organizations))
        for number, (when, step, arguments) in enumerate(steps):
            if "valid_until" in arguments:
                arguments["valid_until"] = start + arguments["valid_until"] * scale
            queue.append((start + when * scale, index, number, step, arguments))
    heapq.heapify(queue)
    total_steps = len(queue)

    state = workflow.state
    with state.lock:
        first_event = state.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    document_ids: list[str | None] = [None] * documents
    share_ids: dict[int, str] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc=f"Simulating {documents} documents", unit="step")
    started = time.perf_counter()
    workflow.pause_sweeps()
    try:
        while queue:
            with state.transaction():
                for _ in range(min(BATCH, len(queue))):
                    when, index, _number, step, arguments = heapq.heappop(queue)
                    _run(workflow, step, arguments, when, index, document_ids, share_ids)
            if bar is not None:
                bar.update(min(BATCH, total_steps - bar.n))
    finally:
        workflow.resume_sweeps()
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started

    ids = [d for d in document_ids if d is not None]
    with state.lock:
        events = Counter(dict(state.db.execute(
            "SELECT event, COUNT(*) FROM events WHERE seq > ? GROUP BY event", (first_event,))))
        deliveries = state.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE event_seq > ?", (first_event,)).fetchone()[0]
        outcomes: Counter[str] = Counter()
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            outcomes.update(dict(state.db.execute(
                f"SELECT status, COUNT(*) FROM documents WHERE id IN ({','.join('?' * len(part))})"
                " GROUP BY status", part)))
    return SimulationReport(
        documents=documents, seed=seed, outcomes=dict(outcomes), events=dict(events),
        deliveries=deliveries, started_at=datetime.fromtimestamp(start, UTC),
        ended_at=datetime.fromtimestamp(end, UTC), elapsed=elapsed, document_ids=ids)


def _run(workflow: Workflow, step: str, arguments: dict[str, Any], when: float, index: int,
         document_ids: list[str | None], share_ids: dict[int, str]) -> None:
    document_id = document_ids[index]
    account = arguments.get("account")
    if step == "create":
        answer = workflow.create(account, arguments["title"], at=when)
        document_ids[index] = answer["results"][0]["documentId"]
    elif step == "edit":
        workflow.edit(account, document_id, arguments["title"], None, at=when)
    elif step == "share":
        valid_until = arguments.get("valid_until")
        answer = workflow.share(
            account, document_id, arguments["purpose"], arguments["recipients"],
            datetime.fromtimestamp(valid_until, UTC).isoformat() if valid_until else None,
            at=when)
        if arguments["purpose"] == "sign":
            share_ids[index] = answer["shareId"]
    elif step == "act":
        workflow.act(account, arguments["action"], None, document_id, to=arguments.get("to"),
                     at=when)
    elif step == "expire":
        # a millisecond late: validUntil went through an ISO string, like the API's
        workflow.expire_due(at=when + 0.001, document_id=document_id)
    elif step == "cancel":
        workflow.cancel_share(account, share_ids[index], at=when)
    elif step == "delete":
        workflow.delete(account, document_id, at=when)
    else:  # pragma: no cover - the planner makes no other step
        raise AssertionError(step)
