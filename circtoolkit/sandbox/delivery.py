"""Signed, at-least-once webhook delivery: the outbox (SQL) and the engine (a thread).

Every event is written, in the same transaction as the change that caused it, to
``events`` and, once per webhook whose scope covers the document, to ``deliveries``
with the exact body bytes and their signature. After the commit the deliveries go to
the engine, which POSTs them from its own thread and event loop, so an API call never
waits for a callback. A timeout, a refused connection or a non-2xx answer is retried
on the retry schedule (each delay jittered by +-20 %); an endpoint answering 410 Gone
disables its webhook. Every attempt is recorded in ``attempts``. Deliveries still
pending when the sandbox stops are resumed by the next sandbox on the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._http1 import TRANSPORT_ERRORS, Connection, Origin, describe, request_head
from ..models import format_epoch
from ..signing import sign
from .state import TENANT, SandboxState

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "FAST_RETRY_SCHEDULE",
    "DeliveryEngine",
    "Job",
    "Outbox",
    "list_deliveries",
]

# Seconds to wait after the 1st, 2nd, ... failed attempt: about two days in all.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 10800, 21600,
                                             43200, 86400)
# For demos and tests: six retries within about three seconds.
FAST_RETRY_SCHEDULE: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
JITTER = 0.2
FINAL_STATES = ("delivered", "failed", "gone", "cancelled")

log = logging.getLogger("circtoolkit.sandbox.delivery")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    event           TEXT NOT NULL,
    actor           TEXT NOT NULL,
    timestamp       TEXT NOT NULL,
    organization_id TEXT,
    tenant          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    event_seq    INTEGER NOT NULL,
    webhook_id   TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    body         BLOB NOT NULL,
    signature    TEXT,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL,
    updated      REAL
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS attempts (
    delivery_seq INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    started      REAL NOT NULL,
    status_code  INTEGER,
    latency_ms   REAL NOT NULL,
    error        TEXT,
    PRIMARY KEY (delivery_seq, attempt)
);
"""

_JSON_TYPE = b"Content-Type: application/json\r\n"
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


@dataclass(slots=True)
class Job:
    """One delivery on its way: where, what, and how many attempts it has had."""

    seq: int
    delivery_id: str
    webhook_id: str
    url: str
    body: bytes
    signature: str | None
    attempts: int = 0


def notification_body(document_id: str, event: str, actor: str, timestamp: str) -> bytes:
    """The exact bytes Circularo POSTs: compact JSON in the documented field order."""
    return (f'{{"documentId":{_encode_string(document_id)},"event":{_encode_string(event)},'
            f'"actor":{_encode_string(actor)},"timestamp":{_encode_string(timestamp)}}}'
            ).encode()


class Outbox:
    """Writes events and their deliveries inside the caller's transaction."""

    def __init__(self, state: SandboxState, submit: Callable[[list[Job]], None]) -> None:
        self.state = state
        self.submit = submit
        self._staged: list[Job] = []
        with state.lock:
            state.db.executescript(_SCHEMA)
            self._last_seq = state.db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM deliveries").fetchone()[0]
        state.join(self)

    def emit(self, *, document_id: str, event: str, actor: str, at: float,
             organization_id: str | None, tenant: str = TENANT) -> dict[str, Any]:
        """Record one event and queue it for every covering webhook; returns the payload.

        Must run inside ``state.transaction()``: the deliveries reach the engine only
        when that transaction commits.
        """
        timestamp = format_epoch(at)
        body = notification_body(document_id, event, actor, timestamp)
        event_id = secrets.token_hex(10)
        db = self.state.db
        event_seq = db.execute(
            "INSERT INTO events (id, document_id, event, actor, timestamp, organization_id,"
            " tenant) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, document_id, event, actor, timestamp, organization_id, tenant)).lastrowid
        hooks = [hook for hook in self.state.hooks.values()
                 if hook.covers(organization_id, tenant)]
        if hooks:
            jobs = []
            for hook in hooks:
                self._last_seq += 1
                jobs.append(Job(self._last_seq, secrets.token_hex(10), hook.id, hook.callback_url,
                                body, sign(body, hook.hmac_secret) if hook.hmac_secret else None))
            now = time.time()
            db.executemany(
                "INSERT INTO deliveries (seq, id, event_seq, webhook_id, callback_url, body,"
                " signature, state, attempts, next_at, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                [(j.seq, j.delivery_id, event_seq, j.webhook_id, j.url, j.body, j.signature,
                  now, now) for j in jobs])
            self._staged.extend(jobs)
        return {"documentId": document_id, "event": event, "actor": actor,
                "timestamp": timestamp, "eventId": event_id, "deliveries": len(hooks)}

    # TransactionParticipant: staged deliveries follow savepoints and rollbacks

    def mark(self) -> tuple[int, int]:
        return len(self._staged), self._last_seq

    def rollback(self, mark: object) -> None:
        staged, self._last_seq = mark  # type: ignore[misc]
        del self._staged[staged:]

    def commit(self) -> None:
        jobs, self._staged = self._staged, []
        self.submit(jobs)


def result_attempted(outcome: str, job: Job, status: int | None, error: str | None) -> bool:
    """Whether a result stands for a real attempt (cancelled and unsendable ones do not)."""
    if outcome == "cancelled":
        return status is not None or error is not None
    return not (outcome == "failed" and job.attempts == 0)


class _Lane:
    """The deliveries waiting for one origin, and the workers sending them."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.queue: deque[Job] = deque()
        self.wakeup = asyncio.Event()
        self.workers = 0
        self.busy = 0


_Result = tuple[Job, float, int | None, float, str | None, str, float | None]


class DeliveryEngine:
    """Sends deliveries from a background thread; retries, records, resumes.

    Each origin (scheme, host, port) gets a lane: a queue and up to
    ``max_connections_per_origin`` workers, each with its own keep-alive connection.
    ``sweep`` (if given) runs on the engine's thread every ``sweep_interval`` seconds:
    the sandbox uses it to expire overdue sign requests.
    """

    def __init__(self, state: SandboxState, *, retry_schedule: Sequence[float],
                 timeout: float = 10.0, max_connections_per_origin: int = 32,
                 sweep: Callable[[], object] | None = None, sweep_interval: float = 0.25,
                 idle_worker_timeout: float = 30.0) -> None:
        self.state = state
        self.retry_schedule = tuple(float(delay) for delay in retry_schedule)
        if any(delay < 0 for delay in self.retry_schedule):
            raise ValueError("retry delays must be >= 0")
        self.timeout = timeout
        self.max_connections_per_origin = max_connections_per_origin
        self.sweep = sweep
        self.sweep_interval = sweep_interval
        self.idle_worker_timeout = idle_worker_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lanes: dict[Origin, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped: asyncio.Event | None = None
        self._results: list[_Result] = []
        self._outstanding = 0
        self._idle = threading.Condition()
        self._failure: BaseException | None = None
        self._random = random.Random()
        self._accepting = False
        self._early: list[Job] = []
        self._timers: dict[int, tuple[asyncio.TimerHandle, Job]] = {}
        state.webhook_removed.append(self._webhook_removed)

    # -- lifecycle (caller's thread) -------------------------------------------------

    def start(self) -> None:
        """Start the thread and resume every delivery still pending in the database.

        Pending rows are read under the state's lock, and new deliveries are taken from
        that moment on: a commit is either before the read (resumed) or after (taken),
        never both and never neither.
        """
        with self.state.lock:
            rows = self.state.db.execute(
                "SELECT seq, id, webhook_id, callback_url, body, signature, attempts, next_at"
                " FROM deliveries WHERE state = 'pending' ORDER BY seq").fetchall()
            with self._idle:
                self._accepting = True
        now = time.time()
        due, later = [], []
        for row in rows:
            job = Job(row["seq"], row["id"], row["webhook_id"], row["callback_url"],
                      bytes(row["body"]), row["signature"], row["attempts"])
            wait = (row["next_at"] or 0) - now
            (due if wait <= 0 else later).append((job, wait))
        self._count(len(rows))
        with self._idle:
            self._early[:0] = [job for job, _ in due]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready, later),
                                        name="circtoolkit-delivery", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending; what is not delivered stays pending in the database."""
        if self._loop is None or self._thread is None:
            return
        with self._idle:
            self._accepting = False
        self._call(self._begin_stop)
        self._thread.join(timeout)
        self._loop = None
        with self._idle:
            self._idle.notify_all()

    def submit(self, jobs: list[Job]) -> None:
        """Hand new deliveries to the engine (any thread). Before ``start()`` they stay
        pending in the database, and ``start()`` resumes them."""
        if not jobs:
            return
        with self._idle:
            if not self._accepting:
                return
            self._outstanding += len(jobs)
            if self._loop is None:
                self._early.extend(jobs)
                return
        self._call(self._accept, jobs)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted delivery reached a final state and was recorded."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._outstanding > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._loop is None:
                    return False
                self._idle.wait(min(remaining, 0.1))
        return True

    @property
    def outstanding(self) -> int:
        """Deliveries submitted and not yet final (sending, or waiting to retry)."""
        return self._outstanding

    def check(self) -> None:
        """Re-raise in the caller's thread an error that stopped the engine."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise RuntimeError(f"the delivery engine failed: {failure!r}") from failure

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(callback, *args)

    def _count(self, delta: int) -> None:
        with self._idle:
            self._outstanding += delta
            if self._outstanding <= 0:
                self._idle.notify_all()

    # -- the engine's thread ---------------------------------------------------------

    def _run(self, ready: threading.Event, later: list[tuple[Job, float]]) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is not on every platform
            loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready, later))
        except BaseException as exc:
            self._failure = exc
            log.exception("delivery engine failed")
        finally:
            loop.close()

    async def _main(self, ready: threading.Event, later: list[tuple[Job, float]]) -> None:
        self._stopped = asyncio.Event()
        background = [asyncio.ensure_future(self._flush_periodically()),
                      asyncio.ensure_future(self._sweep_periodically())]
        with self._idle:
            self._loop = asyncio.get_running_loop()
            early, self._early = self._early, []
        for job, wait in later:
            self._retry_later(job, wait)
        self._accept(early)
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            while self._tasks:  # workers spawned while stopping are ended too
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            self._flush()

    def _begin_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept(self, jobs: list[Job]) -> None:
        touched = set()
        for job in jobs:
            try:
                head = request_head(job.url)
            except (ValueError, UnicodeError) as exc:
                self._record(job, time.time(), None, 0.0, f"invalid URL: {exc}", "failed", None)
                continue
            lane = self._lanes.get(head.origin)
            if lane is None:
                lane = self._lanes[head.origin] = _Lane(head.origin)
            lane.queue.append(job)
            touched.add(lane)
        if self._stopped is not None and self._stopped.is_set():
            return  # stopping: they stay pending in the database for the next start
        for lane in touched:
            # a new worker whenever the queue is longer than the idle workers can take
            while (lane.workers < self.max_connections_per_origin
                   and lane.workers - lane.busy < len(lane.queue)):
                lane.workers += 1
                self._spawn(self._worker(lane))
            lane.wakeup.set()

    def _retry_later(self, job: Job, delay: float) -> None:
        assert self._loop is not None
        handle = self._loop.call_later(delay, self._requeue, job)
        self._timers[job.seq] = (handle, job)

    def _requeue(self, job: Job) -> None:
        self._timers.pop(job.seq, None)
        self._accept([job])

    def _webhook_removed(self, webhook_id: str) -> None:
        """A webhook was deleted or disabled: settle its waiting deliveries now."""
        self._call(self._cancel_webhook, webhook_id)

    def _cancel_webhook(self, webhook_id: str) -> None:
        now = time.time()
        for seq, (handle, job) in list(self._timers.items()):
            if job.webhook_id == webhook_id:
                handle.cancel()
                del self._timers[seq]
                self._record(job, now, None, 0.0, None, "cancelled", None)
        for lane in self._lanes.values():
            kept = [job for job in lane.queue if job.webhook_id != webhook_id]
            for job in lane.queue:
                if job.webhook_id == webhook_id:
                    self._record(job, now, None, 0.0, None, "cancelled", None)
            lane.queue = deque(kept)

    async def _worker(self, lane: _Lane) -> None:
        connection = Connection(lane.origin)
        try:
            while True:
                if not lane.queue:
                    lane.wakeup.clear()
                    try:
                        async with asyncio.timeout(self.idle_worker_timeout):
                            await lane.wakeup.wait()
                    except TimeoutError:
                        if lane.queue:  # work arrived in the same pass as the timeout
                            continue
                        return
                    continue
                lane.busy += 1
                try:
                    await self._attempt(connection, lane.queue.popleft())
                finally:
                    lane.busy -= 1
        finally:
            lane.workers -= 1
            connection.close()

    async def _attempt(self, connection: Connection, job: Job) -> None:
        if job.webhook_id not in self.state.hooks:  # deleted, or disabled by a 410
            self._record(job, time.time(), None, 0.0, None, "cancelled", None)
            return
        extra = _JSON_TYPE + (b"x-circularo-signature: " + job.signature.encode("ascii")
                              + b"\r\n" if job.signature else b"")
        started = time.time()
        clock = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                status = await connection.post(request_head(job.url), job.body, extra)
        except TimeoutError:
            connection.close()
            error = f"timed out after {self.timeout:g} s"
        except TRANSPORT_ERRORS as exc:
            connection.close()
            error = describe(exc)
        except Exception as exc:  # a bug must cost one attempt, never the delivery
            connection.close()
            log.exception("delivery attempt failed unexpectedly")
            error = f"internal error: {type(exc).__name__}"
        latency = time.perf_counter() - clock
        job.attempts += 1
        if status is not None and 200 <= status < 300:
            outcome, next_at = "delivered", None
        elif status == 410:
            outcome, next_at = "gone", None
        elif job.webhook_id not in self.state.hooks:  # deleted while this attempt ran
            outcome, next_at = "cancelled", None
        elif job.attempts <= len(self.retry_schedule):
            delay = self.retry_schedule[job.attempts - 1]
            delay *= 1 + self._random.uniform(-JITTER, JITTER)
            outcome, next_at = "pending", time.time() + delay
            self._retry_later(job, delay)
        else:
            outcome, next_at = "failed", None
        if error is None and status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        self._record(job, started, status, latency, error, outcome, next_at)

    def _record(self, job: Job, started: float, status: int | None, latency: float,
                error: str | None, outcome: str, next_at: float | None) -> None:
        self._results.append((job, started, status, latency, error, outcome, next_at))
        if len(self._results) >= 2000:
            self._flush()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            try:
                self._flush()
            except Exception as exc:  # kept for the next try, and reported through check()
                log.exception("could not record delivery results")
                self._failure = exc
                await asyncio.sleep(0.5)

    async def _sweep_periodically(self) -> None:
        if self.sweep is None:
            return
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.sweep()
            except Exception:  # an expiry bug must not stop deliveries
                log.exception("sweep failed")

    def _flush(self) -> None:
        """Record finished attempts in one transaction, then count them as settled."""
        if not self._results:
            return
        results, self._results = self._results, []
        try:
            self._write(results)
        except BaseException:
            self._results[:0] = results  # not lost: written with the next flush
            raise
        self._count(-sum(1 for result in results if result[5] != "pending"))

    def _write(self, results: list[_Result]) -> None:
        now = time.time()
        attempts = []
        updates = []
        gone: list[str] = []
        for job, started, status, latency, error, outcome, next_at in results:
            if started and result_attempted(outcome, job, status, error):
                attempts.append((job.seq, job.attempts, started, status,
                                 round(latency * 1000, 3), error))
            if outcome == "gone":
                gone.append(job.webhook_id)
            updates.append((outcome, job.attempts, next_at, now, job.seq))
        with self.state.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?)", attempts)
            db.executemany("UPDATE deliveries SET state = ?, attempts = ?, next_at = ?,"
                           " updated = ? WHERE seq = ?", updates)
            for webhook_id in gone:
                if self.state.disable_webhook(webhook_id):
                    log.info("webhook %s answered 410 Gone: disabled", webhook_id)


_DELIVERY_COLUMNS = (
    "d.seq, d.id AS delivery_id, e.id AS event_id, d.webhook_id, d.callback_url, e.event,"
    " e.document_id, e.actor, e.timestamp, d.state, d.attempts, d.next_at"
)


def list_deliveries(state: SandboxState, visible_webhooks: set[str] | None, *,
                    webhook_id: str | None = None, delivery_state: str | None = None,
                    after: int = 0, limit: int = 100) -> dict[str, Any]:
    """Deliveries with their attempts, oldest first, for the sandbox-only endpoint.

    ``visible_webhooks`` limits them to the caller's webhooks (None: all of them).
    """
    clauses, params = ["d.seq > ?"], [after]
    if webhook_id is not None:
        clauses.append("d.webhook_id = ?")
        params.append(webhook_id)
    if delivery_state is not None:
        clauses.append("d.state = ?")
        params.append(delivery_state)
    if visible_webhooks is not None:
        clauses.append(f"d.webhook_id IN ({','.join('?' * len(visible_webhooks))})")
        params.extend(sorted(visible_webhooks))
    where = " AND ".join(clauses)
    with state.lock:
        rows = state.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"
            f" WHERE {where} ORDER BY d.seq LIMIT ?", (*params, limit)).fetchall()
        total = state.db.execute(f"SELECT COUNT(*) FROM deliveries d WHERE {where}",
                                 params).fetchone()[0]
        attempts: dict[str, list[dict[str, Any]]] = {}
        if rows:
            for attempt in state.db.execute(
                    "SELECT * FROM attempts WHERE delivery_seq BETWEEN ? AND ?"
                    " ORDER BY delivery_seq, attempt", (rows[0]["seq"], rows[-1]["seq"])):
                attempts.setdefault(attempt["delivery_seq"], []).append({
                    "attempt": attempt["attempt"],
                    "at": format_epoch(attempt["started"]),
                    "statusCode": attempt["status_code"],
                    "latencyMs": attempt["latency_ms"],
                    "error": attempt["error"],
                })
    results = [{
        "seq": row["seq"], "deliveryId": row["delivery_id"], "eventId": row["event_id"],
        "webhookId": row["webhook_id"], "callbackUrl": row["callback_url"],
        "event": row["event"], "documentId": row["document_id"], "actor": row["actor"],
        "timestamp": row["timestamp"], "state": row["state"],
        "nextAttemptAt": (format_epoch(row["next_at"])
                          if row["state"] == "pending" and row["next_at"] else None),
        "attempts": attempts.get(row["seq"], []),
    } for row in rows]
    return {"total": total, "results": results}
