"""Atomic writes and checked reads: every file descent writes goes through here.

Writes are atomic: the bytes go to a temporary file in the same folder, are
fsync'd, and the file is renamed over the target, so a reader (or a resumed run)
sees the old file or the new one, never half of one. Reads are bounded: a JSON file
larger than its limit or nested deeper than MAX_JSON_DEPTH is refused with a message
naming it (descent's own files nest about ten levels). `check_writable` refuses an
output path that cannot be written before any work is done.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from descent.errors import CheckpointError, ConfigError, OutputError

MAX_JSON_DEPTH = 64  # nesting levels of any JSON file read back
MAX_JSON_BYTES = 256 * 2**20  # a checkpoint of a million epochs' history is ~150 MB


def _file_mode() -> int:
    """The mode a plain open() would give a new file (0o666 less the umask);
    mkstemp's own 0o600 would hide run files from the user's group."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file, fsync and rename. OutputError names
    the path when it cannot be written (a folder in the way, no permission, a full disk):
    the old file, if any, is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _cannot_write(path, e) from None
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _cannot_write(path, e) from None
        raise
    _fsync_dir(path.parent)


def _cannot_write(path: Path, e: OSError) -> OutputError:
    why = "it is a folder" if path.is_dir() else (e.strerror or str(e))
    return OutputError(f"{path}: cannot be written ({why}); choose another path")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON; non-finite floats become null (JSON has no NaN)."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: str | Path, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file; a CheckpointError names the file when it cannot be read, is
    larger than `max_bytes` or nests deeper than MAX_JSON_DEPTH."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise CheckpointError(
                f"{path}: {size:,} bytes, more than a {what} can be ({max_bytes:,}); "
                "it is not one descent wrote"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the {what}: {e.strerror}") from None
    too_deep = False
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: not a valid {what} ({e}); it may be truncated or of another format"
        ) from None
    except RecursionError:  # deeper than the parser's own limit
        doc, too_deep = None, True
    if too_deep or _depth(doc) > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{path}: nested more than {MAX_JSON_DEPTH} levels deep; a {what} written by "
            "descent nests about ten, so this one was not"
        )
    return doc


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (descent writes null or a string for it)")


def _depth(obj: Any) -> int:
    """How deeply lists and dicts nest in `obj` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_JSON_DEPTH:
                break
            stack.extend(
                (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def check_writable(path: str | Path, option: str, *, folder: bool = False) -> Path:
    """Refuse, before any work starts, an output `path` (a file, or with folder=True a
    folder) that cannot be written: a folder where a file is wanted or the reverse, a
    file on the way, or no permission. `option` (--out, --json, ...) names it in the
    message. Returns the path, with ~ expanded."""
    path = Path(path).expanduser()
    try:
        if path.is_dir() and not folder:
            raise ConfigError(f"{option} {path}: is a folder; give a file name in it")
        if path.exists() and not path.is_dir() and folder:
            raise ConfigError(
                f"{option} {path}: exists and is not a directory: choose another {option}"
            )
        where = path if folder and path.is_dir() else path.parent
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise ConfigError(
                f"{option} {path}: {where} is a file, not a directory, so nothing can be "
                f"made under it: choose another {option}"
            )
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot be used ({e.strerror})") from None
    if not os.access(where, os.W_OK | os.X_OK) or not _can_create_in(where):
        raise ConfigError(
            f"{option} {path}: {where} is not writable (permission denied or a read-only "
            f"file system): choose another {option}"
        )
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in `folder`: tried, not guessed (os.access says yes to
    root everywhere, and knows nothing of /proc or a read-only mount). The trial file
    has no name where the system allows it (O_TMPFILE), and is gone at once."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
