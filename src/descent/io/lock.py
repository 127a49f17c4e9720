"""One writer per run folder: an exclusive `fcntl.flock` on <folder>/.descent/lock.

The lock belongs to the open file, so the operating system releases it when the process
ends in any way (also `kill -9`): a crashed run never leaves a folder locked. The
holder writes its process id and command into the file, for the message a second
writer gets.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from descent.errors import RunFolderError

LOCK_NAME = ".descent/lock"


class FolderLock:
    """An exclusive lock on a run folder, held from `acquire` to `release`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, command: str) -> FolderLock:
        """Take the lock (creating the lock file) or raise RunFolderError naming the
        folder and, when it says, the process that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise RunFolderError(
                f"{self.folder}: cannot make its lock file {self.path} ({e.strerror}): "
                "choose another --out"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise self._refusal(e) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {command}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def check_free(self) -> None:
        """RunFolderError when another process holds the lock (nothing is created)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # no lock file: nobody has claimed the folder
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            raise self._refusal(e) from None
        finally:
            os.close(fd)  # closing releases the shared lock taken to test it

    def _refusal(self, e: OSError) -> RunFolderError:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return RunFolderError(
                f"{self.folder}: cannot lock the run folder ({e.strerror}); descent needs a "
                "file system with flock() locks (a local disk): choose another --out"
            )
        try:
            pid, command = self.path.read_text().split()[:2]
            who = f" (process {pid}, descent {command})"
        except (OSError, ValueError, UnicodeDecodeError):
            who = ""
        return RunFolderError(
            f"{self.folder}: in use by another descent run{who}; one run writes a folder at "
            "a time: wait for it to finish, or choose another --out"
        )
