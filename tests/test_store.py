"""EventStore internals that the listener tests do not reach: journal rotation, torn
frames, segments, and frames handed out before."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from circtoolkit import store as store_module
from circtoolkit.store import EventStore, PendingRequest, encode_headers, journal_path

HEADERS = encode_headers([(b"content-type", b"application/json")])


def add(writer, n: int, *, document: str | None = None) -> None:
    body = json.dumps({"documentId": document or f"doc-{n}", "event": "documentSigned",
                       "actor": "bob@acme.test", "timestamp": "2023-07-19T12:30:00.152Z"}
                      ).encode()
    writer.add(PendingRequest(time.time_ns(), "POST", "/", 200, "accepted", None, HEADERS,
                              body, len(body), (1689769800152 + n, "documentSigned",
                                                document or f"doc-{n}", "bob@acme.test",
                                                True)))


def test_the_journal_rotates_once_indexed_and_nothing_is_applied_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "JOURNAL_ROTATE_BYTES", 1000)
    db = str(tmp_path / "events.db")
    store = EventStore(db)
    writer = store.writer()
    for n in range(50):
        add(writer, n)
        writer.commit()
    assert os.path.getsize(journal_path(db)) > 1000
    for _ in range(200):  # idle: the writer's thread indexes, then rotates
        if os.path.getsize(journal_path(db)) == 0:
            break
        time.sleep(0.02)
    assert os.path.getsize(journal_path(db)) == 0
    for n in range(50, 60):
        add(writer, n)
        add(writer, 3)  # a duplicate of an event from before the rotation
        writer.commit()
    writer.close()
    with EventStore(db) as reader:
        events = reader.events
        assert events["documentId"].tolist() == [f"doc-{n}" for n in range(60)]
        assert events.set_index("documentId").loc["doc-3", "deliveries"] == 11
        assert reader.counts() == {"accepted": 60, "duplicate": 10, "rejected": 0}
    store.close()


def test_a_torn_frame_is_dropped_and_what_came_before_kept(tmp_path: Path) -> None:
    db = str(tmp_path / "events.db")
    store = EventStore(db)
    writer = store.writer()
    for n in range(3):
        add(writer, n)
    writer.commit()
    journal = writer._journal
    journal._stop.set()  # a crash: nothing indexed, the file let go, half a frame written
    journal._thread.join()
    os.close(journal.fd)
    with open(journal_path(db), "ab") as torn:
        torn.write(b"\x40\x00\x00\x00garbage")
    with EventStore(db) as reader:
        assert reader.events["documentId"].tolist() == ["doc-0", "doc-1", "doc-2"]
    again = EventStore(db).writer()  # a new writer truncates the torn tail and carries on
    add(again, 3)
    again.commit()
    again.close()
    with EventStore(db) as reader:
        assert reader.events["documentId"].tolist() == [f"doc-{n}" for n in range(4)]


def test_segments_and_recounts_survive_a_cold_read(tmp_path: Path) -> None:
    db = str(tmp_path / "events.db")
    store = EventStore(db, segment_size=4)
    writer = store.writer()
    for n in range(10):
        add(writer, n)
    writer.commit()
    add(writer, 1)  # duplicates of sealed events
    add(writer, 1)
    add(writer, 9)
    writer.commit()
    writer.close()
    with EventStore(db, segment_size=4) as reader:
        events = reader.events
    assert events["event_id"].tolist() == list(range(1, 11))
    assert events["deliveries"].tolist() == [1, 3, 1, 1, 1, 1, 1, 1, 1, 2]
    store.close()


def test_frames_handed_out_before_do_not_change(tmp_path: Path) -> None:
    store = EventStore()
    writer = store.writer()
    add(writer, 0)
    writer.commit()
    before = store.events
    add(writer, 0)
    add(writer, 1)
    writer.commit()
    after = store.events
    assert before["deliveries"].tolist() == [1]
    assert after["deliveries"].tolist() == [2, 1]


def test_one_writer_per_database(tmp_path: Path) -> None:
    from circtoolkit import ConfigurationError

    db = str(tmp_path / "events.db")
    first = EventStore(db).writer()
    with pytest.raises(ConfigurationError, match="another listener is writing"):
        EventStore(db).writer()
    first.close()
    EventStore(db).writer().close()  # free again once the first has closed


def test_a_journal_left_by_a_deleted_database_is_not_replayed(tmp_path: Path) -> None:
    db = str(tmp_path / "events.db")
    writer = EventStore(db).writer()
    add(writer, 1)
    writer.commit()
    journal = writer._journal
    journal._stop.set()
    journal._thread.join()
    os.close(journal.fd)  # left behind, unindexed
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    fresh = EventStore(db)
    fresh.writer().close()
    assert fresh.events.empty
