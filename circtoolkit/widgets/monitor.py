"""EventMonitor: live counters and the latest events of a Listener, filterable, exportable."""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..listener import Listener
from ..models import EVENT_TYPES
from .logic import filter_events, html_table, monitor_counts

__all__ = ["EventMonitor"]

_SHOWN = ["event_id", "received_at", "event", "documentId", "actor", "verified", "deliveries"]


class EventMonitor(widgets.VBox):
    """Watches a listener: counts per event type, verified and rejected, the latest
    events, filters by type and document, and a CSV export of the current view.

    It polls ``listener.stats`` (a few integers) every ``interval`` seconds from a
    helper thread and redraws only when something changed, so it never slows the
    listener and never freezes the kernel. ``stop()`` (or closing it) ends the polling.
    """

    def __init__(self, listener: Listener, *, interval: float = 0.5, rows: int = 15,
                 auto_refresh: bool = True, **kwargs: Any) -> None:
        self.listener = listener
        self.interval = interval
        self.rows = rows
        self.counters = widgets.HTML()
        self.latest = widgets.HTML()
        self.status = widgets.HTML()
        self.event_filter = widgets.Dropdown(description="event",
                                             options=[("all", "")] + [(e, e) for e in EVENT_TYPES])
        self.document_filter = widgets.Text(description="document", placeholder="id contains…")
        self.export_path = widgets.Text(description="CSV file", value="events.csv")
        self.export_button = widgets.Button(description="export view", icon="download")
        self.event_filter.observe(lambda _: self.redraw(), names="value")
        self.document_filter.observe(lambda _: self.redraw(), names="value")
        self.export_button.on_click(lambda _: self.export())
        self._seen: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__([widgets.HTML("<h3>Events</h3>"), self.counters,
                          widgets.HBox([self.event_filter, self.document_filter]), self.latest,
                          widgets.HBox([self.export_path, self.export_button]), self.status],
                         **kwargs)
        self.redraw()
        if auto_refresh:
            self._thread = threading.Thread(target=self._poll, daemon=True,
                                            name="circtoolkit-event-monitor")
            self._thread.start()

    def counts(self) -> dict[str, int]:
        """The counters as shown: per event type, verified, unverified, duplicates,
        rejected."""
        return monitor_counts(self._events(), self.listener.stats)

    def _events(self) -> pd.DataFrame:
        # the store itself: reading through the listener would take its thread errors,
        # which belong to your next call, not to this widget
        return self.listener.store.events

    def view(self) -> pd.DataFrame:
        """The events the filters select, newest first."""
        events = self._events()
        selected = filter_events(events, event=self.event_filter.value or None,
                                 document=self.document_filter.value or None)
        return selected.iloc[::-1]

    def redraw(self) -> None:
        """Redraw counters and table now (thread-safe; the poller calls it on change)."""
        with self._lock:
            stats = self.listener.stats
            events = self._events()
            counts = monitor_counts(events, stats)
            cells = "".join(
                f"<div style='display:inline-block;margin:2px 10px 2px 0;padding:4px 8px;"
                f"border:1px solid #ddd;border-radius:4px'><b>{value:,}</b> "
                f"{html.escape(name)}</div>" for name, value in counts.items())
            self.counters.value = cells
            view = filter_events(events, event=self.event_filter.value or None,
                                 document=self.document_filter.value or None).iloc[::-1]
            shown = view.head(self.rows)[_SHOWN].copy()
            shown["received_at"] = shown["received_at"].dt.strftime("%H:%M:%S")
            shown["documentId"] = [d if len(d) <= 12 else d[:8] + "…"
                                   for d in shown["documentId"]]
            self.latest.value = html_table(shown.to_dict("records"),
                                           empty="no events match" if len(events)
                                           else "waiting for events…")
            self._seen = stats

    def export(self) -> Path | None:
        """Write the current view (all matching rows) to the CSV file; returns its path."""
        path = Path(self.export_path.value.strip() or "events.csv")
        view = self.view()
        try:
            view.to_csv(path, index=False)
        except OSError as exc:
            self.status.value = (f"<span style='color:#b00020'>could not write "
                                 f"{html.escape(str(path))}: {html.escape(str(exc))}</span>")
            return None
        self.status.value = f"{len(view):,} events written to {html.escape(str(path))}"
        return path

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.listener.stats != self._seen:
                    self.redraw()
            except Exception as exc:  # say so, and keep watching: it may pass
                self.status.value = (f"<span style='color:#b00020'>could not read the "
                                     f"listener: {html.escape(str(exc))}</span>")

    def stop(self) -> None:
        """Stop following the listener."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        self.stop()
        super().close()

    def wait_until_drawn(self, count: int, timeout: float = 10.0) -> None:
        """Block until the monitor has drawn at least ``count`` events (for notebooks)."""
        deadline = time.monotonic() + timeout
        while (self._seen or {}).get("events", 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the monitor shows {(self._seen or {}).get('events', 0)} "
                                   f"of {count} events")
            time.sleep(0.05)
