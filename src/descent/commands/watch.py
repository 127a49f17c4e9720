"""`descent watch RUN_DIR... | runs/`: the live page for runs read from their folders,
finished or still going, their curves overlaid (watch/follow.py)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from descent.errors import ConfigError
from descent.options import WATCH_INTERVAL, finite_number
from descent.watch.follow import RunFollower, find_runs
from descent.watch.session import WatchSession


def watch_command(
    paths: Sequence[str | Path],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    interval: float = 1.0,
    out: TextIO | None = None,
    until: threading.Event | None = None,
) -> int:
    """Serve the page for the runs in `paths` until Ctrl-C (or until `until` is set);
    returns the number of runs it showed. The folders are read again when their files
    change, at most every `interval` seconds."""
    out = out or sys.stdout
    low, high = WATCH_INTERVAL
    if not (finite_number(interval) and low <= interval <= high):
        raise ConfigError(
            f"--interval {interval}: give the seconds between looks at the files, from "
            f"{low:g} to {high:g} (default 1)"
        )
    missing = [str(p) for p in paths if not Path(p).is_dir()]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: no such folder; give run folders or runs/")
    if not find_runs(paths):
        raise ConfigError(
            f"no train or fit run in {', '.join(map(str, paths))}: a run folder has a "
            "config.json (give run folders, or a folder of them such as runs/)"
        )
    session = WatchSession(host=host, port=port, out=out, can_stop=False)  # others' runs
    follower = RunFollower(session.log, paths, interval=interval).start()
    with session:
        print(
            f"showing {len(follower.runs)} run(s), read again as their files change; Ctrl-C to end",
            file=out,
            flush=True,
        )
        try:
            (until or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
        finally:
            follower.close()
    return len(follower.runs)
