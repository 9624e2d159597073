"""One writer per run directory: an flock that dies with its process.

`fcntl.flock` locks belong to the open file description, so the kernel drops them when
the holder exits however it exits (SIGKILL included): no stale lock ever needs clearing.
The holder writes its pid into the file so a refused process can name it. Readers
(`read_status`) never take the lock, so they can never delay or refuse a writer.
Caveat: flock is local to one machine; on NFS two hosts may both get it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from evtui.jobs.errors import JobLocked, JobWriteError

LOCK_NAME = ".lock"


class RunLock:
    """The exclusive lock of one run directory, held until `release` or process exit."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_NAME
        self.fd = -1

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise JobWriteError(self.path, e, "the run directory must be writable") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobLocked(self.run_dir, holder_pid(self.run_dir)) from None
        except OSError as e:
            os.close(fd)
            raise JobWriteError(self.path, e, "could not lock the run directory") from e
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is a courtesy to the next process; the lock is what matters

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing the last descriptor drops the flock
        self.fd = -1


def holder_pid(run_dir: Path) -> int | None:
    """The pid of the live process holding the run's lock, or None when nobody holds it."""
    path = run_dir / LOCK_NAME
    try:
        ino = path.stat().st_ino
        text = path.read_text().strip()
    except OSError:
        return None
    held = _flock_holders(ino)
    if held is not None:  # /proc/locks is authoritative where it exists
        if not held:
            return None
        return int(text) if text.isdigit() and int(text) in held else min(held)
    if text.isdigit() and _alive(int(text)):
        return int(text)
    return None


def _flock_holders(ino: int) -> set[int] | None:
    """Pids holding an FLOCK on inode `ino` per /proc/locks; None where that file is absent."""
    try:
        with open("/proc/locks") as f:
            rows = f.read().splitlines()
    except OSError:
        return None
    pids: set[int] = set()
    for row in rows:
        parts = row.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF" (blocked waiters carry "->")
        if (
            len(parts) >= 6
            and parts[1] == "FLOCK"
            and "->" not in parts[0]
            and parts[5].rsplit(":", 1)[-1] == str(ino)
            and parts[4].isdigit()
        ):
            pids.add(int(parts[4]))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
