"""`descent watch RUN_DIR... | runs/`: the live page for runs read from their folders.

    follower = RunFollower(log, ["runs/"]).start()   # a thread; polls every second
    ...
    follower.close()

Each run folder (one with a config.json of a train or fit) becomes a run on the page,
its id the folder's name; a folder of run folders (runs/) gives all of them, and new
ones as they appear. The follower reads each folder's files with report/rundata.py
(metrics.csv, summary.json, the model, and for a run still going the newest
checkpoint's history) when they change, at most every `interval` seconds, and
appends to the log only what is new: the run's header once, the epochs not yet
sent, the newest pictures, the end. Finished runs are read once and then left alone.
Nothing here can stop a run: the page has no Stop button.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from descent.errors import DescentError
from descent.report.rundata import RunFiles, events_from_run, read_run
from descent.watch.log import EventLog

PICTURES = ("weights", "curve", "params", "data", "groups")


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """The run folders in `paths`: each path that has a config.json, and the
    subfolders that have one of each path that does not."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "config.json").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if (p / "config.json").is_file())
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


class _Followed:
    """One run folder and what of it the page has been sent."""

    def __init__(self, folder: Path, run: str) -> None:
        self.folder, self.run = folder, run
        self.files = RunFiles(folder)
        self.header_sent = False
        self.epochs_sent = 0
        self.ended = False


class RunFollower:
    """Follows run folders into `log` from a daemon thread (see the module text).

    Args:
        log: the EventLog the page reads.
        paths: run folders, or folders of run folders.
        interval: seconds between two looks at the files (the bound on the rate).
    """

    def __init__(self, log: EventLog, paths: Iterable[str | Path], interval: float = 1.0) -> None:
        self.log, self.paths, self.interval = log, [Path(p) for p in paths], interval
        self.runs: dict[Path, _Followed] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """Look at every folder once; returns the number of events appended."""
        appended = 0
        for folder in find_runs(self.paths):
            key = folder.resolve()
            if key not in self.runs:
                self.runs[key] = _Followed(folder, self._run_id(folder))
            followed = self.runs[key]
            if followed.ended or not followed.files.changed():
                continue
            appended += self._read(followed)
        return appended

    def _run_id(self, folder: Path) -> str:
        name = folder.resolve().name
        taken = {f.run for f in self.runs.values()}
        if name not in taken:
            return name
        return f"{folder.resolve().parent.name}/{name}"

    def _read(self, followed: _Followed) -> int:
        finished = followed.files.finished  # before reading: the files are final then
        try:
            events = events_from_run(read_run(followed.folder, followed.run))
        except DescentError:
            return 0  # config.json being written, say: next time
        new: list[dict] = []
        epochs = [e for e in events if e["type"] == "epoch"]
        if not followed.header_sent:
            new.append(events[0])
            followed.header_sent = True
        if len(epochs) < followed.epochs_sent:  # the run was started over
            new.append(events[0])
            followed.epochs_sent = 0
        new += epochs[followed.epochs_sent :]
        followed.epochs_sent = len(epochs)
        new += [e for e in events if e["type"] in PICTURES]
        ends = [e for e in events if e["type"] == "end"]
        if ends and finished:
            new += ends
            followed.ended = True
        for event in new:
            self.log.append(event)
        return len(new)

    def start(self) -> RunFollower:
        self.poll()  # what is there now, before the page is opened
        self._thread = threading.Thread(target=self._loop, daemon=True, name="watch-follow")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
