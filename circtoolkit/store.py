"""EventStore: every received request, durably, and the accepted events as a DataFrame.

SQLite holds every request in ``requests``: raw body, headers, verdict, time, and, for
an accepted one, the event it carried (its ``seq`` is the event's id), with a count of
how many times that same body arrived. Duplicates are recognised by a digest of the
body, looked up in memory. Strings are dictionary-coded, and every 65,536 events
are also sealed into a columnar segment, so that reading a million stored events is a
few array loads rather than a million row fetches. Reads are incremental: after the
first, ``events`` costs in proportion to what arrived since.

One writer (the listener) and any number of readers. In a file (WAL), they use
separate connections; in memory (``db=None``), they share one behind a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import marshal
import os
import secrets
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigurationError
from .models import EVENT_TYPES

__all__ = ["EVENT_COLUMNS", "REQUEST_COLUMNS", "EventStore", "PendingRequest", "StoreWriter"]

EVENT_COLUMNS = ("event_id", "received_at", "timestamp", "event", "documentId", "actor",
                 "verified", "deliveries")
REQUEST_COLUMNS = ("request_id", "received_at", "method", "path", "status", "verdict",
                   "reason", "event_id", "size", "headers", "body")
SEGMENT_SIZE = 65536
log = logging.getLogger("circtoolkit.store")
_KIND_EVENT, _KIND_DOCUMENT, _KIND_ACTOR = 0, 1, 2
_INT_COLUMNS = ("seq", "received_ns", "ts_ms", "event", "document", "actor", "verified",
                "deliveries")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq         INTEGER PRIMARY KEY,
    received_ns INTEGER NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    reason      TEXT,
    event_seq   INTEGER,
    size        INTEGER NOT NULL,
    headers     BLOB NOT NULL,
    body        BLOB NOT NULL,
    -- for an accepted request, the event it carried (its seq is the event id):
    digest      BLOB,
    ts_ms       INTEGER,
    event       INTEGER,
    document    INTEGER,
    actor       INTEGER,
    verified    INTEGER,
    deliveries  INTEGER
);
-- one row per duplicate delivery: readers find recounted events here, without indexes
-- on requests that every commit would have to update
CREATE TABLE IF NOT EXISTS recounts (
    version INTEGER PRIMARY KEY,
    seq     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS strings (
    kind  INTEGER NOT NULL,
    code  INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, code)
);
CREATE TABLE IF NOT EXISTS forwards (
    event_seq   INTEGER NOT NULL,
    at_ns       INTEGER NOT NULL,
    target      TEXT NOT NULL,
    status      INTEGER,
    latency_ms  REAL NOT NULL,
    error       TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    id         INTEGER PRIMARY KEY CHECK (id = 0),
    generation INTEGER NOT NULL,
    applied    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_channels (
    relay      TEXT PRIMARY KEY,
    listen_url TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_cursors (
    channel TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    data      BLOB NOT NULL
);
"""
_EVENT_SELECT = ("seq, received_ns, ts_ms, event, document, actor, verified, deliveries"
                 " FROM requests WHERE verdict = 'accepted'")


def encode_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Headers as received, one ``name: value`` per line (cheaper than JSON)."""
    return b"\n".join(map(b": ".join, headers))


def decode_headers(data: bytes) -> dict[str, str]:
    """The headers stored by ``encode_headers``, as a dict (last value wins)."""
    pairs = (line.split(b": ", 1) for line in bytes(data).split(b"\n") if line)
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in pairs}


def body_hash(body: bytes) -> bytes:
    """The key that recognises a notification delivered again: its body's digest."""
    return hashlib.blake2b(body, digest_size=16).digest()


def _connect(path: str, uri: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(path, uri=uri, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 10000")
    if not uri:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
    return connection


@dataclass(slots=True)
class PendingRequest:
    """A request the writer has judged, waiting for its batch to commit."""

    received_ns: int
    method: str
    path: str
    status: int
    verdict: str  # "accepted" | "duplicate" | "rejected"
    reason: str | None
    headers: bytes  # encode_headers(...)
    body: bytes
    size: int
    event: tuple[int, str, str, str, bool] | None = None  # ts_ms, event, document, actor, verified
    digest: bytes | None = None
    request_seq: int = 0
    event_seq: int | None = None


@dataclass
class _Strings:
    """A dictionary coding: value -> code, and code -> value."""

    kind: int
    codes: dict[str, int] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)

    def code(self, value: str, new: list[tuple[int, int, str]]) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
            new.append((self.kind, code, value))
        return code

    def load(self, rows: Iterable[tuple[int, str]]) -> None:
        for code, value in rows:
            if code >= len(self.values):
                self.values.extend([""] * (code + 1 - len(self.values)))
            self.values[code] = value
            self.codes[value] = code



_FRAME = struct.Struct("<IIQ")  # payload length, crc32, journal generation
JOURNAL_ROTATE_BYTES = 16 * 1024 * 1024
JOURNAL_BACKLOG_BYTES = 256 * 1024 * 1024
BACKLOG_CHUNK_FRAMES = 32  # while busy, index a little at a time: short pauses only
INDEX_CHUNK_FRAMES = 512
INDEX_CHUNK_ROWS = 4096
IDLE_BEFORE_INDEXING = 0.02


def journal_path(db: str) -> str:
    """Where a store's journal lives: next to its SQLite file."""
    return db + ".journal"  # not "-journal": SQLite would take that for its own


def _frames(path: str, offset: int, generation: int) -> Iterator[tuple[int, Any]]:
    """(end offset, batch) of each whole, intact frame of ``generation`` from ``offset``.

    Stops at the first torn or foreign frame: a crash mid-append leaves at most one,
    at the end, and it was never acknowledged.
    """
    try:
        journal = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with journal:
        journal.seek(offset)
        while True:
            header = journal.read(_FRAME.size)
            if len(header) < _FRAME.size:
                return
            length, crc, frame_generation = _FRAME.unpack(header)
            payload = journal.read(length)
            if (len(payload) < length or zlib.crc32(payload) != crc
                    or frame_generation != generation):
                return
            offset += _FRAME.size + length
            yield offset, marshal.loads(payload)  # noqa: S302 - our own file, CRC-checked


def _apply(db: sqlite3.Connection, batch: Any) -> None:
    """Write one batch (requests, new strings, recounts) inside the caller's transaction."""
    rows, new_strings, bumps = batch
    db.executemany("INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                   " ?, ?, ?, ?, ?, ?)", rows)
    if new_strings:
        db.executemany("INSERT OR IGNORE INTO strings VALUES (?, ?, ?)", new_strings)
    if bumps:
        db.executemany("UPDATE requests SET deliveries = deliveries + 1 WHERE seq = ?",
                       [(seq,) for _, seq in bumps])
        db.executemany("INSERT OR IGNORE INTO recounts VALUES (?, ?)", bumps)


def _seal_segments(db: sqlite3.Connection, size: int) -> None:
    """Write out every full segment of events not yet in one (inside a transaction)."""
    while True:
        sealed = db.execute("SELECT COALESCE(MAX(last_seq), 0) FROM segments").fetchone()[0]
        waiting = db.execute("SELECT COUNT(*) FROM requests WHERE seq > ? AND"
                             " verdict = 'accepted'", (sealed,)).fetchone()[0]
        if waiting < size:  # counted in C; the rows are fetched only for a full segment
            return
        rows = db.execute(f"SELECT {_EVENT_SELECT} AND seq > ? ORDER BY seq LIMIT ?",
                          (sealed, size)).fetchall()
        buffer = io.BytesIO()
        np.save(buffer, np.array(rows, dtype=np.int64).T, allow_pickle=False)
        db.execute("INSERT INTO segments VALUES (?, ?, ?)",
                   (rows[0][0], rows[-1][0], buffer.getvalue()))


def index_journal(db: sqlite3.Connection, path: str, segment_size: int,
                  limit: int | None = None) -> int:
    """Move the intact journal frames not yet applied (at most ``limit``) into SQLite;
    returns how many.

    Safe from any connection, any process: the applied offset is read and advanced in
    the same transaction as the rows, so each frame is applied exactly once. Frames go
    in transactions of a few thousand requests, so that nobody waits long for the
    database.
    """
    total = 0
    while limit is None or total < limit:
        chunk = INDEX_CHUNK_FRAMES if limit is None else min(INDEX_CHUNK_FRAMES, limit - total)
        count = _index_chunk(db, path, segment_size, chunk)
        total += count
        if count == 0:
            break
    return total


def _index_chunk(db: sqlite3.Connection, path: str, segment_size: int, limit: int) -> int:
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT generation, applied FROM journal WHERE id = 0").fetchone()
        if row is None:  # no writer has opened this database yet
            db.execute("COMMIT")
            return 0
        generation, applied = row
        count = rows = 0
        for end, batch in _frames(path, applied, generation):
            _apply(db, batch)
            applied = end
            count += 1
            rows += len(batch[0])
            if count >= limit or rows >= INDEX_CHUNK_ROWS:
                break
        if count:
            db.execute("UPDATE journal SET applied = ? WHERE id = 0", (applied,))
            _seal_segments(db, segment_size)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return count


class _Journal:
    """The writer's append-only file: a batch is durable once its frame is written.

    A frame reaches the operating system with one ``write`` before any request in it
    is answered; it survives the process being killed, as a SQLite commit in WAL mode
    with synchronous=NORMAL does. SQLite receives it later (``index_journal``).
    """

    def __init__(self, path: str, db: sqlite3.Connection, segment_size: int) -> None:
        self.path = path
        self.db = db
        self.segment_size = segment_size
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ConfigurationError(f"another listener is writing to {path[:-8]}: one "
                                     "writer per database (stop the other one first)") from None
        self.lock = threading.Lock()
        self.index_lock = threading.Lock()  # one connection: one indexing at a time
        index_journal(db, path, segment_size)  # recovery: whatever a crash left
        self.generation, applied = db.execute(
            "SELECT generation, applied FROM journal WHERE id = 0").fetchone()
        os.ftruncate(self.fd, applied)  # drop a torn frame a crash may have left
        self.size = applied
        self.last_append = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._index_when_idle, daemon=True,
                                        name="circtoolkit-indexer")
        self._thread.start()

    def append(self, batch: Any) -> None:
        payload = marshal.dumps(batch)
        frame = _FRAME.pack(len(payload), zlib.crc32(payload), self.generation) + payload
        with self.lock:
            written = os.write(self.fd, frame)
            if written != len(frame):  # a full disk: the frame is torn, so never applied
                os.ftruncate(self.fd, self.size)
                raise OSError(f"journal write short by {len(frame) - written} bytes")
            self.size += written
            self.last_append = time.monotonic()

    def _index_when_idle(self) -> None:
        busy_wait = IDLE_BEFORE_INDEXING
        while not self._stop.wait(busy_wait):
            idle = time.monotonic() - self.last_append >= IDLE_BEFORE_INDEXING
            try:
                with self.index_lock:
                    applied = self._applied()
                    if applied < self.size and (idle or
                                                self.size - applied > JOURNAL_BACKLOG_BYTES):
                        # one chunk at a time, the lock free in between (forward records)
                        index_journal(self.db, self.path, self.segment_size,
                                      limit=BACKLOG_CHUNK_FRAMES)
                    elif idle and applied == self.size >= JOURNAL_ROTATE_BYTES:
                        self._rotate()
            except sqlite3.Error as exc:  # kept in the journal; reported to the owner
                log.error("could not index the journal (will try again): %s", exc)
                self.error = exc

    def _applied(self) -> int:
        return int(self.db.execute("SELECT applied FROM journal WHERE id = 0").fetchone()[0])

    def _rotate(self) -> None:
        """Start the journal afresh once SQLite holds all of it."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self._applied() != self.size:
                    self.db.execute("ROLLBACK")
                    return
                self.generation += 1
                self.db.execute("UPDATE journal SET generation = ?, applied = 0 WHERE id = 0",
                                (self.generation,))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            os.ftruncate(self.fd, 0)
            self.size = 0

    def close(self) -> None:
        """Stop indexing in the background, index what is left, close the file. If the
        last indexing fails, the frames stay in the journal for the next opening."""
        self._stop.set()
        self._thread.join(5)
        try:
            self.index()
        finally:
            os.close(self.fd)

    def index(self) -> None:
        """Index everything now (from any thread)."""
        with self.index_lock:
            index_journal(self.db, self.path, self.segment_size)


class StoreWriter:
    """The single writer: judges duplicates, numbers requests and events, commits batches.

    Used from one thread (the listener's event loop). ``add`` stages a request;
    ``commit`` writes every staged one in a single transaction.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._db, self._lock = store._writer_connection()
        self._pending_strings: list[tuple[int, int, str]] = []
        with self._lock:
            self._db.executescript(_SCHEMA)
            # a random first generation: a journal left by a deleted database never matches
            self._db.execute("INSERT OR IGNORE INTO journal VALUES (0, ?, 0)",
                             (secrets.randbits(62),))
            self._journal = (None if store.path is None else
                             _Journal(journal_path(store.path), self._db, store.segment_size))
            self._next_request = self._scalar("SELECT COALESCE(MAX(seq), 0) FROM requests") + 1
            self._version = self._scalar("SELECT COALESCE(MAX(version), 0) FROM recounts")
            sealed = self._scalar("SELECT COALESCE(MAX(last_seq), 0) FROM segments")
            self._strings = {kind: _Strings(kind) for kind in (0, 1, 2)}
            for kind, strings in self._strings.items():
                strings.load(self._db.execute(
                    "SELECT code, value FROM strings WHERE kind = ? ORDER BY code", (kind,)))
            for name in EVENT_TYPES:  # known events get the first codes, in order
                self._strings[_KIND_EVENT].code(name, self._pending_strings)
            # every event seen, by body digest -> its seq: duplicates are found in memory
            self._seen: dict[bytes, int] = dict(self._db.execute(
                "SELECT digest, seq FROM requests WHERE verdict = 'accepted'"))
            self._unsealed = int(self._db.execute(
                "SELECT COUNT(*) FROM requests WHERE verdict = 'accepted' AND seq > ?",
                (sealed,)).fetchone()[0])
        self._staged: list[PendingRequest] = []
        self._staged_digests: list[bytes] = []
        self._checkpointer = (None if self.store.path is None
                              else _Checkpointer(self.store.path, self._db))

    def _scalar(self, sql: str) -> int:
        return int(self._db.execute(sql).fetchone()[0])

    def add(self, request: PendingRequest) -> PendingRequest:
        """Stage a request; an accepted one whose body was seen before becomes a duplicate."""
        request.request_seq = self._next_request
        self._next_request += 1
        if request.verdict == "accepted":
            digest = request.digest = body_hash(request.body)
            earlier = self._seen.get(digest)
            if earlier is not None:
                request.verdict, request.reason = "duplicate", "delivered before"
                request.event_seq = earlier
            else:
                request.event_seq = self._seen[digest] = request.request_seq
                self._staged_digests.append(digest)
        self._staged.append(request)
        return request

    @property
    def staged(self) -> int:
        return len(self._staged)

    def commit(self) -> list[PendingRequest]:
        """Write every staged request in one transaction; returns them once durable.

        On failure nothing is written, the numbering is restored, and the error
        propagates: none of the staged requests may be answered 2xx.
        """
        staged, self._staged = self._staged, []
        digests, self._staged_digests = self._staged_digests, []
        if not staged:
            return staged
        new_strings, self._pending_strings = self._pending_strings, []
        rows: list[tuple[Any, ...]] = []
        bumps: list[tuple[int, int]] = []
        events: list[tuple[int, ...]] = []
        event_code = self._strings[_KIND_EVENT].code
        document_code = self._strings[_KIND_DOCUMENT].code
        actor_code = self._strings[_KIND_ACTOR].code
        first_request, version = staged[0].request_seq, self._version
        for request in staged:
            if request.verdict == "accepted" and request.event is not None:
                ts_ms, name, document, actor, verified = request.event
                event = (request.request_seq, request.received_ns, ts_ms,
                         event_code(name, new_strings), document_code(document, new_strings),
                         actor_code(actor, new_strings), int(verified), 1)
                events.append(event)
                rows.append((request.request_seq, request.received_ns, request.method,
                             request.path, request.status, request.verdict, request.reason,
                             request.event_seq, request.size, request.headers, request.body,
                             request.digest, *event[2:]))
                continue
            if request.verdict == "duplicate":
                self._version += 1
                bumps.append((self._version, request.event_seq))
            rows.append((request.request_seq, request.received_ns, request.method, request.path,
                         request.status, request.verdict, request.reason, request.event_seq,
                         request.size, request.headers, request.body, None, None, None, None,
                         None, None, None))
        batch = (rows, new_strings, bumps)
        try:
            if self._journal is not None:
                self._journal.append(batch)
            else:
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        _apply(self._db, batch)
                        if self._unsealed + len(events) >= self.store.segment_size:
                            _seal_segments(self._db, self.store.segment_size)
                        self._db.execute("COMMIT")
                    except BaseException:
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise
        except BaseException:
            self._next_request, self._version = first_request, version
            for digest in digests:
                self._seen.pop(digest, None)
            for kind, code, value in new_strings:
                self._strings[kind].codes.pop(value, None)
                del self._strings[kind].values[code:]
            self._pending_strings = [s for s in new_strings if s[0] == _KIND_EVENT
                                     and s[2] in EVENT_TYPES]
            raise
        self._unsealed = (self._unsealed + len(events)) % self.store.segment_size
        return staged

    def record_forward(self, event_seq: int, target: str, status: int | None,
                       latency_ms: float, error: str | None) -> None:
        """Record one forward of an event to a local app."""
        # the connection is shared with the journal's indexing: never inside its transaction
        with self._journal.index_lock if self._journal is not None else self._lock:
            self._db.execute("INSERT INTO forwards VALUES (?, ?, ?, ?, ?, ?)",
                             (event_seq, time.time_ns(), target, status, latency_ms, error))

    def check(self) -> None:
        """Raise the error that the background indexing last met, once."""
        if self._journal is not None and self._journal.error is not None:
            error, self._journal.error = self._journal.error, None
            raise error

    def index(self) -> None:
        """Move what the journal holds into SQLite now (readers do this themselves)."""
        if self._journal is not None:
            self._journal.index()

    def close(self) -> None:
        """Index the journal and close the writer's connection (not a shared one)."""
        try:
            if self._journal is not None:
                self._journal.close()
        finally:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            if self._db is not self.store._shared:
                self._db.close()


class _Checkpointer:
    """Moves the WAL into the database file from a thread of its own.

    SQLite would otherwise checkpoint inside a commit now and then, making that request
    batch wait for the copy and its fsync; a passive checkpoint here never blocks the
    writer, and the fsync waits release the GIL.
    """

    def __init__(self, path: str, writer: sqlite3.Connection, interval: float = 0.5) -> None:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._connection = _connect(path, False)
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="circtoolkit-checkpoint")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(sqlite3.Error):
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._connection.close()


class _Columns:
    """The events' columns as growable arrays, handed out as read-only views.

    Everything a DataFrame needs is kept ready (nanosecond times, category codes,
    strings), so a read converts only the rows that are new.
    """

    INT64 = ("seq", "received_ns", "ts_ns", "event", "deliveries")

    def __init__(self) -> None:
        self.size = 0
        self.arrays: dict[str, np.ndarray] = {name: np.empty(1024, dtype=np.int64)
                                              for name in self.INT64}
        self.arrays["verified"] = np.empty(1024, dtype=bool)
        self.arrays["documentId"] = np.empty(1024, dtype=object)
        self.arrays["actor"] = np.empty(1024, dtype=object)

    def extend(self, block: np.ndarray, recode: np.ndarray, documents: np.ndarray,
               actors: np.ndarray) -> None:
        """Append rows given as an (8, n) int64 block in ``_INT_COLUMNS`` order."""
        count = block.shape[1]
        needed = self.size + count
        capacity = len(self.arrays["seq"])
        if needed > capacity:
            capacity = max(needed, capacity * 2)
            for name, array in self.arrays.items():
                grown = np.empty(capacity, dtype=array.dtype)
                grown[: self.size] = array[: self.size]
                self.arrays[name] = grown
        window = slice(self.size, needed)
        seq, received, ts_ms, event, document, actor, verified, deliveries = block
        self.arrays["seq"][window] = seq
        self.arrays["received_ns"][window] = received
        self.arrays["ts_ns"][window] = ts_ms * 1_000_000
        self.arrays["event"][window] = recode[event]
        self.arrays["deliveries"][window] = deliveries
        self.arrays["verified"][window] = verified.astype(bool)
        self.arrays["documentId"][window] = documents.take(document)
        self.arrays["actor"][window] = actors.take(actor)
        self.size = needed

    def view(self, name: str) -> np.ndarray:
        view = self.arrays[name][: self.size]
        view.flags.writeable = False
        return view


class EventStore:
    """Durable capture of webhook requests (SQLite) with the events as a DataFrame.

    ``EventStore("events.db")`` opens (or creates) a file that survives restarts;
    ``EventStore()`` keeps everything in memory for the life of the process.
    """

    def __init__(self, db: str | Path | None = None, *, segment_size: int = SEGMENT_SIZE) -> None:
        if segment_size < 1:
            raise ConfigurationError("segment_size must be >= 1")
        self.segment_size = segment_size
        self.path = None if db is None else str(db)
        if self.path == ":memory:":
            raise ConfigurationError("use db=None for an in-memory store")
        self._shared = _connect(":memory:", False) if self.path is None else None
        self._shared_lock = threading.RLock()
        self._reader = self._shared or _connect(self.path or "", False)
        self._reader_lock = self._shared_lock
        with self._reader_lock:
            exists = self._reader.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'journal'").fetchone()
            if not exists:  # a reader needs no write lock on an existing store
                self._reader.executescript(_SCHEMA)
        self._read_lock = threading.Lock()
        self._columns = _Columns()
        self._last_seq = 0
        self._last_version = 0
        self._strings = {kind: _Strings(kind) for kind in (0, 1, 2)}
        self._categories: list[str] = list(EVENT_TYPES)
        self._recode = np.arange(len(EVENT_TYPES), dtype=np.int64)
        self._dictionaries = {kind: np.empty(0, dtype=object) for kind in (1, 2)}
        self._frame: pd.DataFrame | None = None

    # -- connections -----------------------------------------------------------------

    def _writer_connection(self) -> tuple[sqlite3.Connection, threading.RLock]:
        """In memory, the one shared connection and its lock; in a file, a new one."""
        if self._shared is not None:
            return self._shared, self._shared_lock
        return _connect(self.path or "", False), threading.RLock()

    def writer(self) -> StoreWriter:
        """The store's writer (one at a time), for a listener."""
        return StoreWriter(self)

    def close(self) -> None:
        """Close the reader's connection (and the in-memory database)."""
        self._reader.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------

    @property
    def events(self) -> pd.DataFrame:
        """The accepted events, one row per distinct notification, in arrival order.

        Columns: event_id (int64), received_at and timestamp (datetime64[ns, UTC]),
        event (categorical), documentId, actor (str), verified (bool), deliveries (int64:
        how many times it was received). Each read costs in proportion to what is new.
        """
        with self._read_lock:
            self._catch_up()
            # a shallow copy: your column changes stay yours; the data is shared, read-only
            return self._refresh().copy(deep=False)

    def _catch_up(self) -> None:
        """Index what a listener's journal holds, so reads see every stored request."""
        if self.path is not None:
            with self._reader_lock:
                index_journal(self._reader, journal_path(self.path), self.segment_size)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reader_lock:
            return self._reader.execute(sql, params).fetchall()

    def _refresh(self) -> pd.DataFrame:
        columns = self._columns
        changed = False
        # read the version first: a change racing with this read is patched next time
        version = self._query("SELECT COALESCE(MAX(version), 0) FROM recounts")[0][0]
        known = self._last_seq
        if columns.size == 0:
            for (data,) in self._query("SELECT data FROM segments ORDER BY first_seq"):
                block = np.load(io.BytesIO(data), allow_pickle=False)
                self._extend(block)
                changed = True
            # segments were sealed with a delivery count of 1: bring the recounted ones in
            updates = self._query("SELECT seq, deliveries FROM requests WHERE seq IN"
                                  " (SELECT DISTINCT seq FROM recounts WHERE seq <= ?)",
                                  (self._last_seq,))
        else:
            updates = (self._query("SELECT seq, deliveries FROM requests WHERE seq IN"
                                   " (SELECT DISTINCT seq FROM recounts WHERE version > ? AND"
                                   " seq <= ?)", (self._last_version, known))
                       if version > self._last_version else [])
        rows = self._query(f"SELECT {_EVENT_SELECT} AND seq > ? ORDER BY seq",
                           (self._last_seq,))
        if rows:
            self._extend(np.array(rows, dtype=np.int64).T)
            changed = True
        if updates:
            self._patch_deliveries(updates)
            changed = True
        self._last_version = version
        if changed or self._frame is None:
            self._frame = self._build()
        return self._frame

    def _extend(self, block: np.ndarray) -> None:
        self._load_strings()  # after the rows were read: they may use codes new since
        self._columns.extend(block, self._recode, self._dictionaries[_KIND_DOCUMENT],
                             self._dictionaries[_KIND_ACTOR])
        self._last_seq = int(block[0, -1])

    def _patch_deliveries(self, updates: list[tuple[int, int]]) -> None:
        columns = self._columns
        # a fresh array, so that frames handed out before keep their values
        deliveries = columns.arrays["deliveries"].copy()
        seqs = columns.arrays["seq"][: columns.size]
        keys = np.array([seq for seq, _ in updates], dtype=np.int64)
        positions = np.searchsorted(seqs, keys)
        deliveries[positions] = [count for _, count in updates]
        columns.arrays["deliveries"] = deliveries

    def _load_strings(self) -> None:
        for kind, strings in self._strings.items():
            new = self._query("SELECT code, value FROM strings WHERE kind = ? AND code >= ?"
                              " ORDER BY code", (kind, len(strings.values)))
            if not new:
                continue
            strings.load(new)
            if kind == _KIND_EVENT:
                for name in strings.values:
                    if name not in self._categories:
                        self._categories.append(name)
                self._recode = np.array([self._categories.index(n) for n in strings.values],
                                        dtype=np.int64)
            else:
                self._dictionaries[kind] = np.array(strings.values, dtype=object)

    def _build(self) -> pd.DataFrame:
        columns = self._columns
        times = {name: pd.Series(columns.view(source).view("datetime64[ns]"), copy=False
                                 ).dt.tz_localize("UTC")
                 for name, source in (("received_at", "received_ns"), ("timestamp", "ts_ns"))}
        return pd.DataFrame({
            "event_id": columns.view("seq"),
            "received_at": times["received_at"],
            "timestamp": times["timestamp"],
            "event": pd.Categorical.from_codes(columns.view("event"),
                                               categories=self._categories),
            "documentId": pd.Series(columns.view("documentId"), dtype=object, copy=False),
            "actor": pd.Series(columns.view("actor"), dtype=object, copy=False),
            "verified": columns.view("verified"),
            "deliveries": columns.view("deliveries"),
        }, copy=False)

    @property
    def requests(self) -> pd.DataFrame:
        """Every request received, accepted or not, oldest first.

        Columns: request_id, received_at (UTC), method, path, status (the HTTP answer),
        verdict (accepted, duplicate, rejected), reason, event_id (nullable), size,
        headers (dict), body (bytes, as received).
        """
        self._catch_up()
        rows = self._query("SELECT seq, received_ns, method, path, status, verdict, reason,"
                           " event_seq, size, headers, body FROM requests ORDER BY seq")
        frame = pd.DataFrame.from_records(rows, columns=list(REQUEST_COLUMNS))
        frame["received_at"] = pd.to_datetime(frame["received_at"].astype("int64"), utc=True)
        frame["event_id"] = frame["event_id"].astype("Int64")
        frame["headers"] = [decode_headers(data) for data in frame["headers"]]
        frame["body"] = [bytes(body) for body in frame["body"]]
        return frame

    @property
    def forwards(self) -> pd.DataFrame:
        """Each forward of an event to a local app: event_id, at, target, status,
        latency_ms, error."""
        rows = self._query("SELECT event_seq, at_ns, target, status, latency_ms, error"
                           " FROM forwards ORDER BY rowid")
        frame = pd.DataFrame.from_records(rows, columns=["event_id", "at", "target", "status",
                                                         "latency_ms", "error"])
        frame["at"] = pd.to_datetime(frame["at"].astype("int64"), utc=True)
        frame["status"] = frame["status"].astype("Int64")
        return frame

    def request_for(self, event_id: int) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the request that first delivered an event."""
        self._catch_up()
        rows = self._query("SELECT body, headers FROM requests WHERE seq = ? AND"
                           " verdict = 'accepted'", (int(event_id),))
        if not rows:
            raise KeyError(f"no event with id {event_id}")
        body, headers = rows[0]
        return bytes(body), decode_headers(headers)

    def relay_channel(self, relay: str, create: Callable[[str], str]) -> str:
        """The listen URL of this store's channel on ``relay`` (made with ``create`` the
        first time, then remembered, so a restarted listener resumes the same channel)."""
        rows = self._query("SELECT listen_url FROM relay_channels WHERE relay = ?", (relay,))
        if rows:
            return str(rows[0][0])
        listen_url = create(relay)
        with self._reader_lock:
            self._reader.execute("INSERT OR IGNORE INTO relay_channels VALUES (?, ?)",
                                 (relay, listen_url))
        return self.relay_channel(relay, create)

    def relay_cursor(self, channel: str) -> int:
        """The last relay message of ``channel`` handed over (0: none yet)."""
        rows = self._query("SELECT seq FROM relay_cursors WHERE channel = ?", (channel,))
        return int(rows[0][0]) if rows else 0

    def save_relay_cursor(self, channel: str, seq: int) -> None:
        """Remember that relay message ``seq`` of ``channel`` was handed over and stored."""
        with self._reader_lock:
            self._reader.execute("INSERT INTO relay_cursors VALUES (?, ?) ON CONFLICT (channel)"
                                 " DO UPDATE SET seq = MAX(seq, excluded.seq)", (channel, seq))

    def counts(self) -> dict[str, int]:
        """How many requests of each verdict, and how many events."""
        self._catch_up()
        verdicts = dict(self._query("SELECT verdict, COUNT(*) FROM requests GROUP BY verdict"))
        return {"accepted": verdicts.get("accepted", 0),
                "duplicate": verdicts.get("duplicate", 0),
                "rejected": verdicts.get("rejected", 0)}

