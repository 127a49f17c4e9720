"""A run's folder, owned by one run: config.json, metrics.csv, plots/, model and
checkpoint files, and .descent/ (the run's id and files, and its lock).

    run = RunDir.create("runs/a", "train")           # a new run: refused if runs/a holds
    ...                                               #   anything, unless overwrite=True and
    run.close()                                       #   it is a descent run
    run = RunDir.reopen("runs/a")                    # `descent resume`: the same run

The rules:
- A new run goes only into a missing or empty folder. `overwrite=True` replaces a
  previous descent run there: the files that run recorded in .descent/run.json, its
  checkpoints and the runs nested in it are removed, and nothing else; a folder that is
  not a descent run is never written into.
- Each run gets an id (a uuid), kept in .descent/run.json; the commands write it into
  config.json, every checkpoint and summary.json.
- While a run writes its folder it holds the folder's lock (io/lock.py): a second writer
  is refused, and the lock ends with the process.
- Every file the run writes is named through `file`, `plot`, `checkpoints` or `subrun`,
  which record it before it is written, so a run killed half-way can still be replaced.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path, PurePosixPath

from descent.core.history import History
from descent.errors import CheckpointError, RunFolderError
from descent.io.files import atomic_write_text, check_writable, read_json, write_json
from descent.io.lock import FolderLock

RUN_FORMAT, RUN_VERSION = "descent-run", 1
MARKER = ".descent/run.json"
_CHECKPOINT_FILE = re.compile(r"\.?ckpt-e\d+-b\d+\.(json|safetensors)(\..+\.tmp)?")


def default_run_dir(command: str) -> str:
    """Where a run goes without --out: runs/<command>-<YYYYmmdd-HHMMSS>."""
    return f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_marker(folder: Path) -> dict | None:
    """The folder's .descent/run.json, checked; None when there is none."""
    path = folder / MARKER
    if not path.exists():
        return None
    doc = read_json(path, "run record", max_bytes=16 * 2**20)
    ok = (
        isinstance(doc, dict)
        and doc.get("format") == RUN_FORMAT
        and doc.get("version") == RUN_VERSION
        and isinstance(doc.get("run_id"), str)
        and isinstance(doc.get("command"), str)
        and isinstance(doc.get("checkpoints"), bool)
        and isinstance(doc.get("started"), (int, float))
        and all(_inside(n) for key in ("files", "runs") for n in _strings(doc.get(key)))
    )
    if not ok:
        raise RunFolderError(
            f"{path}: not a valid run record (format, version, run_id, command, started, "
            "files, checkpoints, runs); it was edited or damaged: choose another --out"
        )
    return doc


def _strings(value: object) -> list:
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else [0]


def _inside(name: object) -> bool:
    """A relative path that stays inside the folder (no .., not absolute)."""
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    parts = PurePosixPath(name).parts
    return not PurePosixPath(name).is_absolute() and ".." not in parts and "." not in parts


def _contents(folder: Path) -> list[str]:
    """What a folder holds besides .descent/, by name (folders with a slash)."""
    if not folder.is_dir():
        return []
    names = [e.name + ("/" if e.is_dir() else "") for e in folder.iterdir()]
    return sorted(n for n in names if n != ".descent/")


def _describe(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_out(path: str | Path, overwrite: bool = False, *, locked: bool = False) -> Path:
    """Refuse, changing nothing, an --out a new run cannot use: unwritable, in use (unless
    this process holds its lock: `locked`), not empty and not a descent run, or a descent
    run without `overwrite`."""
    folder = check_writable(path, "--out", folder=True)
    if not folder.is_dir():
        return folder
    if not locked:
        FolderLock(folder).check_free()
    marker = read_marker(folder)
    held = _contents(folder)
    if marker is None and held:
        also = " (--overwrite only replaces a descent run)" if overwrite else ""
        raise RunFolderError(
            f"--out {folder}: the folder is not empty and is not a descent run folder (it holds "
            f"{_describe(held)}); descent writes only into a new or empty folder{also}: "
            "choose another --out"
        )
    if marker is not None and not overwrite:
        resume = f" continue it with `descent resume {folder}`,"
        raise RunFolderError(
            f"--out {folder}: holds a descent {marker['command']} run (id {marker['run_id']});"
            + (resume if marker["command"] in ("train", "fit") else "")
            + " replace it with --overwrite, or choose another --out"
        )
    return folder


class RunDir:
    """A run's folder, claimed by this process (see the module docstring): paths of the
    files it writes, their listing, and its id. `close()` releases the folder's lock."""

    def __init__(self, path: Path, lock: FolderLock, marker: dict) -> None:
        self.path, self._lock, self._marker = path, lock, marker

    @classmethod
    def create(
        cls, path: str | Path, command: str, *, overwrite: bool = False, warn=None
    ) -> RunDir:
        """Claim a folder for a new run (made when missing): refused when it is in use,
        holds something that is not a descent run, or holds a run and not `overwrite`;
        with `overwrite` that run's files are removed first (`warn(message)` hears what
        was kept)."""
        folder = check_out(path, overwrite)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(
                f"{folder}: cannot create the run directory: {e.strerror}"
            ) from None
        lock = FolderLock(folder).acquire(command)
        try:
            check_out(folder, overwrite, locked=True)  # again, now that no other run can start
            previous = read_marker(folder)
            if previous is not None:
                kept = _remove_run(folder, previous)
                if kept and warn is not None:
                    warn(f"--overwrite kept what the previous run did not write: {_describe(kept)}")
            marker = {
                "format": RUN_FORMAT,
                "version": RUN_VERSION,
                "run_id": uuid.uuid4().hex,
                "command": command,
                "started": time.time(),
                "files": [],
                "checkpoints": False,
                "runs": [],
            }
            write_json(folder / MARKER, marker)
        except BaseException:
            lock.release()
            raise
        return cls(folder, lock, marker)

    @classmethod
    def reopen(cls, path: str | Path, command: str = "resume") -> RunDir:
        """Claim the folder of an existing run to continue it (`descent resume`)."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: no such run directory")
        not_a_run = RunFolderError(
            f"{folder}: not a descent run folder (no {MARKER}); give the folder a "
            "`descent train` or `descent fit` run wrote"
        )
        if read_marker(folder) is None:  # before the lock: nothing is made in the folder
            raise not_a_run
        lock = FolderLock(folder).acquire(command)
        try:
            marker = read_marker(folder)
            if marker is None:
                raise not_a_run
        except BaseException:
            lock.release()
            raise
        return cls(folder, lock, marker)

    @property
    def run_id(self) -> str:
        return self._marker["run_id"]

    @property
    def command(self) -> str:
        return self._marker["command"]

    def close(self) -> None:
        """Release the folder's lock (the OS does it too if the process ends)."""
        self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the files this run writes: recorded before they are written ------------------
    def _record(self, key: str, value: str | bool) -> None:
        marker = self._marker
        if key == "checkpoints":
            if marker["checkpoints"]:
                return
            marker["checkpoints"] = True
        elif value in marker[key]:
            return
        else:
            marker[key].append(value)
        if self._lock.held:
            write_json(self.path / MARKER, marker)

    def file(self, name: str) -> Path:
        """The path of a file this run writes into its folder (recorded as the run's)."""
        self._record("files", name)
        return self.path / name

    def plot(self, name: str) -> Path:
        """plots/<name>, recorded as the run's."""
        return self.file(f"plots/{name}")

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def own_plots(self) -> list[Path]:
        """The plots this run recorded (plot()) that are on the disk, in the order made."""
        names = [n for n in self._marker["files"] if n.startswith("plots/")]
        return [self.path / n for n in names if (self.path / n).is_file()]

    @property
    def checkpoints(self) -> Path:
        """checkpoints/, whose ckpt-* files are the run's."""
        self._record("checkpoints", True)
        return self.path / "checkpoints"

    def subrun(self, name: str) -> Path:
        """A folder for a run of its own inside this one (the demo's digits/)."""
        self._record("runs", name)
        return self.path / name

    def listing(self, first: tuple[str, ...] = ("config.json", "metrics.csv")) -> str:
        """What the folder holds, for a summary line: `first` (those present) in that
        order, then the other files by name, then the subfolders but plots/ (with a
        slash). Listed from the disk, so the line is true whatever the run wrote."""
        entries = sorted(self.path.iterdir(), key=lambda e: e.name)
        shown = [e for e in entries if not e.name.startswith(".")]
        files = [e.name for e in shown if e.is_file()]
        dirs = [e.name + "/" for e in shown if e.is_dir() and e.name != "plots"]
        ordered = [n for n in first if n in files] + [n for n in files if n not in first]
        return " ".join(ordered + dirs)

    def plot_listing(self, made: list[Path]) -> str:
        """The plots of this run, those in `made` first (in the order made), then any
        others in plots/ (the learning-rate finder's, say); "" when there are none."""
        names = [q.name for q in made]
        if self.plots.is_dir():
            others = (q.name for q in self.plots.iterdir() if q.is_file())
            names += sorted(n for n in others if n not in names)
        return " ".join(names)

    def write_metrics(self, history: History, name: str = "metrics.csv") -> Path:
        """The per-epoch records as CSV (one row per epoch)."""
        atomic_write_text(self.file(name), history.to_csv())
        return self.path / name

    def write_config(self, config: dict) -> Path:
        write_json(self.file("config.json"), config)
        return self.path / "config.json"

    def __str__(self) -> str:
        return str(self.path)


def _remove_run(folder: Path, marker: dict) -> list[str]:
    """Delete what the run recorded in `marker` wrote into `folder` (and half-written
    temporary files of those), its checkpoints and nested runs; return what is left."""
    for name in marker["files"]:
        path = folder / name
        for leftover in path.parent.glob(f".{path.name}.*.tmp") if path.parent.is_dir() else []:
            leftover.unlink(missing_ok=True)
        if path.is_symlink() or path.is_file():
            path.unlink()
    checkpoints = folder / "checkpoints"
    if marker["checkpoints"] and checkpoints.is_dir():
        _remove_checkpoints(checkpoints, marker)
    for name in marker["runs"]:
        inner = folder / name
        inner_marker = read_marker(inner) if inner.is_dir() else None
        if inner_marker is not None:
            lock = FolderLock(inner).acquire("overwrite")
            try:
                _remove_run(inner, inner_marker)
            finally:
                lock.release()
            _remove_if_empty(inner / ".descent", keep=("lock",))
    parents = {(folder / n).parent for n in marker["files"]} | {checkpoints}
    parents |= {folder / n for n in marker["runs"]}
    for path in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if path != folder:
            _remove_if_empty(path)
    (folder / MARKER).unlink(missing_ok=True)
    return _contents(folder)


def _remove_checkpoints(folder: Path, marker: dict) -> None:
    """The run's checkpoints: those whose JSON names the run's id (with their tensor
    files), and the temporary files of checkpoint writes cut short since the run started.
    Anything else stays (also a tensor file whose JSON was never written: nothing says
    whose it is)."""
    ours: set[str] = set()
    for path in folder.glob("ckpt-e*-b*.json"):
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            continue
        meta = doc.get("meta") if isinstance(doc, dict) else None
        if isinstance(meta, dict) and meta.get("run_id") == marker["run_id"]:
            ours |= {path.name, path.with_suffix(".safetensors").name}
    for path in folder.iterdir():
        if not _CHECKPOINT_FILE.fullmatch(path.name) or path.is_dir():
            continue
        cut_short = path.suffix == ".tmp" and path.stat().st_mtime >= marker["started"]
        if path.name in ours or cut_short:
            path.unlink()


def _remove_if_empty(folder: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove `folder` when it holds nothing (or only `keep`, removed with it)."""
    try:
        if folder.is_dir() and all(p.name in keep for p in folder.iterdir()):
            for name in keep:
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass  # not empty after all, or not ours to remove: left as it is
