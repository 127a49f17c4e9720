"""What a run was trained on, so that `descent resume` continues on the same data.

    fp = fingerprint("digits/")     # at the start of a run: stored in config.json
    check_same_data(fp.record, fp.manifest, "digits/")   # at resume: a DataError if not

- A file (CSV, TSV, Parquet, .npz): its absolute path, size and SHA-256.
- A folder (image label folders, MNIST IDX files): its absolute path and a manifest of
  the files descent reads there (image files and IDX files, hidden ones skipped, three
  levels deep at most) as [relative name, size, SHA-256]; the record holds the SHA-256
  of that manifest, the run folder the manifest itself (.descent/data.json), so that a
  refusal names the file that changed. The 5,000 small PNGs of the bundled sample
  written out as a folder take about 0.15 s.
- The bundled "mnist-sample": the SHA-256 of the package's own file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from descent.data.images import IMAGE_EXTENSIONS
from descent.errors import ConfigError, DataError

BUNDLED = "mnist-sample"
MAX_DEPTH = 3  # folder/train/<label>/file.png
_CHUNK = 1 << 20


@dataclass
class Fingerprint:
    record: dict  # for config.json: kind, path (or source), bytes, sha256 (+ files)
    manifest: list[list] | None = None  # folders: [relative name, size, sha256] per file


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_file() -> Path:
    """The package file behind "mnist-sample"."""
    return Path(str(resources.files("descent.data") / "mnist_sample.npz"))


def fingerprint(source: str | Path) -> Fingerprint:
    """The fingerprint of a data source (see the module docstring)."""
    try:
        if str(source) == BUNDLED:
            path = bundled_file()
            return Fingerprint(
                {"kind": "bundled", "source": BUNDLED, "bytes": path.stat().st_size,
                 "sha256": file_sha256(path)}
            )  # fmt: skip
        path = Path(source).expanduser().absolute()
        if path.is_file():
            return Fingerprint(
                {"kind": "file", "path": str(path), "bytes": path.stat().st_size,
                 "sha256": file_sha256(path)}
            )  # fmt: skip
        if path.is_dir():
            manifest = folder_manifest(path)
            record = {
                "kind": "folder",
                "path": str(path),
                "files": len(manifest),
                "bytes": sum(size for _, size, _ in manifest),
                "sha256": manifest_sha256(manifest),
            }
            return Fingerprint(record, manifest)
    except OSError as e:
        raise DataError(f"{source}: cannot read the data to fingerprint it: {e}") from None
    raise DataError(f"{source}: no such file or folder")


def _read_by_descent(name: str) -> bool:
    lower = name.lower()
    return os.path.splitext(lower)[1] in IMAGE_EXTENSIONS or "-ubyte" in lower


def folder_manifest(folder: Path) -> list[list]:
    """[relative name, size, sha256] of each file descent reads under `folder`, sorted;
    symbolic links are followed, each real folder visited once (a loop ends there).
    Paths are plain strings here: pathlib's parsing would cost more than the hashing."""
    manifest: list[list] = []
    seen: set[tuple[int, int]] = set()
    stack = [(str(folder), "", 0)]
    while stack:
        current, prefix, depth = stack.pop()
        info = os.stat(current)
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir() and depth < MAX_DEPTH:
                    stack.append((entry.path, f"{prefix}{entry.name}/", depth + 1))
                elif entry.is_file() and _read_by_descent(entry.name):
                    size = entry.stat().st_size
                    manifest.append([prefix + entry.name, size, file_sha256(entry.path)])
    return sorted(manifest)


def manifest_sha256(manifest: list[list]) -> str:
    return hashlib.sha256(json.dumps(manifest, separators=(",", ":")).encode()).hexdigest()


def check_same_data(stored: dict, manifest: list | None, source: str | Path) -> None:
    """DataError, naming the file, unless `source` holds the data `stored` (a record of
    `fingerprint`) describes; `manifest` (a folder's, or None) names what changed."""
    kind = stored["kind"]
    if kind == "bundled":
        if str(source) != BUNDLED:
            raise ConfigError(
                f"this run was trained on the bundled {BUNDLED}; --data is for data that "
                "moved, and the bundled data cannot move"
            )
        if file_sha256(bundled_file()) != stored["sha256"]:
            raise DataError(
                f"{bundled_file()}: the bundled {BUNDLED} is not the one this run was trained "
                "on (descent was upgraded or reinstalled); start a new run"
            )
        return
    path = Path(source).expanduser().absolute()
    moved = "if it moved, resume with `descent resume RUN_DIR --data NEW_PATH`"
    if kind == "file" and not path.is_file() or kind == "folder" and not path.is_dir():
        what = "file" if kind == "file" else "folder"
        raise DataError(
            f"{path}: the data {what} this run was trained on is not there (moved or "
            f"deleted?); {moved}"
        )
    now = fingerprint(path)
    if now.record["sha256"] == stored["sha256"]:
        return
    if kind == "file":
        raise DataError(
            f"{path}: not the data this run was trained on: its SHA-256 is "
            f"{now.record['sha256'][:16]}..., the run's data had {stored['sha256'][:16]}... "
            f"({stored['bytes']:,} bytes, now {now.record['bytes']:,}); resume needs the same "
            "data: put the original back, or start a new run"
        )
    raise DataError(
        f"{path}: not the image folder this run was trained on: {_difference(manifest, now)}; "
        "resume needs the same data: put the original back, or start a new run"
    )


def _difference(stored: list | None, now: Fingerprint) -> str:
    """The first file that differs between two folder manifests, in words."""
    if stored is None:
        return "its files differ (the run's list of files is missing)"
    before = {name: (size, sha) for name, size, sha in stored}
    after = {name: (size, sha) for name, size, sha in now.manifest or []}
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            return f"{name} is missing"
        if name not in before:
            return f"{name} is new"
        if before[name] != after[name]:
            return f"{name} changed"
    return "its files differ"
