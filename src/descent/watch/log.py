"""The event log of a run: what the training loop tells the live page.

The loop appends; readers (the page's event stream, the report) read. Appending
holds a lock for a list append and a notify, never longer, so the loop never waits
on the network or on a slow reader. Readers ask for "every event from index i on"
and may block, with a timeout, until there is one (a Condition). A page that
reloads starts again from index 0 and replays the whole history.

Events are JSON-able dicts with at least `type` and `run` (one log may hold several
runs, the page overlays them) and `t` (seconds since the log was made, set here); their
kinds and fields are listed in report/events.py, which encodes them.

Kinds whose newest event replaces the older ones (`latest_only`: weights, curve,
params, data, groups, group_data) keep the log bounded on long runs: an older one is
dropped (its index stays, readers skip it), so a replay shows the current picture,
not every frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from descent.report.events import encode

LATEST_ONLY = ("weights", "curve", "params", "data", "groups", "group_data")


class EventLog:
    """Append-only, thread-safe list of run events; readers follow it by index."""

    def __init__(self, latest_only: Iterable[str] = LATEST_ONLY) -> None:
        self._events: list[dict | None] = []  # None: superseded by a newer event of its kind
        self._encoded: list[str | None] = []  # JSON text, filled by readers on first use
        self._latest: dict[tuple[Any, str], int] = {}  # (run, type) -> index
        self._latest_only = frozenset(latest_only)
        self._cond = threading.Condition()
        self._closed = False
        self.t0 = time.time()

    # -- the writer's side (the training loop) ---------------------------------------
    def append(self, event: Mapping[str, Any]) -> int:
        """Add one event (copied, with `t` set when absent); returns its index."""
        event = dict(event)
        event.setdefault("t", round(time.time() - self.t0, 3))
        kind = event.get("type")
        with self._cond:
            index = len(self._events)
            if kind in self._latest_only:
                key = (event.get("run"), kind)
                old = self._latest.get(key)
                if old is not None:
                    self._events[old] = self._encoded[old] = None
                self._latest[key] = index
            self._events.append(event)
            self._encoded.append(None)
            self._cond.notify_all()
        return index

    def close(self) -> None:
        """No more events will come: readers stop waiting (they still read to the end)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every waiting reader now (a server shutting down)."""
        with self._cond:
            self._cond.notify_all()

    # -- the readers' side ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._events)

    def since(self, index: int = 0) -> list[tuple[int, dict]]:
        """(index, event) for every live event from `index` on."""
        with self._cond:
            tail = self._events[max(index, 0) :]
        return [(i, e) for i, e in enumerate(tail, max(index, 0)) if e is not None]

    def events(self) -> list[dict]:
        """Every live event, in order (for a report)."""
        return [e for _, e in self.since(0)]

    def wait(self, index: int, timeout: float) -> list[tuple[int, dict]]:
        """Events from `index` on; blocks up to `timeout` seconds while there are none
        (returns [] on timeout, when closed, or when woken)."""
        with self._cond:
            if len(self._events) <= index and not self._closed:
                self._cond.wait(timeout)
        return self.since(index)

    def encoded_since(self, index: int) -> tuple[list[tuple[int, str]], int]:
        """(index, JSON text) for every live event from `index` on, and the index to
        read from next time. Each event is encoded once, by the first reader that
        needs it (not by the loop)."""
        with self._cond:
            start = max(index, 0)
            tail = self._events[start:]
        out = []
        for i, event in enumerate(tail, start):
            if event is None:
                continue
            text = self._encoded[i]
            if text is None:
                text = encode(event)
                with self._cond:
                    if self._events[i] is not None:  # not superseded meanwhile
                        self._encoded[i] = text
            out.append((i, text))
        return out, start + len(tail)
