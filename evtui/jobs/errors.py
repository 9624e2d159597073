"""The job store's exceptions: each message is what the user reads, one problem per line."""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence
from pathlib import Path


class JobError(Exception):
    """Base of every job-directory problem; `str(e)` is ready to show the user."""


class JobLocked(JobError):
    """Another live process holds the run directory; running beside it would corrupt it."""

    def __init__(self, run_dir: Path, pid: int | None) -> None:
        self.run_dir = run_dir
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{run_dir} is in use by {who}; wait for it to finish or stop it, then run again"
        )


class JobMismatch(JobError):
    """The stored run was made with settings that would change results."""

    def __init__(self, run_dir: Path, differences: Sequence[object]) -> None:
        self.run_dir = run_dir
        self.differences = tuple(differences)
        lines = [f"{run_dir} was started with settings that would change its results:"]
        lines += [f"  {d}" for d in self.differences]
        lines.append("  (--force continues anyway; --new starts a fresh run beside it)")
        super().__init__("\n".join(lines))


class JobCorrupt(JobError):
    """A complete line in a job file is not a valid record: not a crash artefact, so refuse."""

    def __init__(self, path: Path, line: int, offset: int, expected: str) -> None:
        self.path = path
        self.line = line
        self.offset = offset
        where = f"{path}:{line} (byte {offset})" if line else f"{path} (byte {offset})"
        super().__init__(f"{where}: {expected}")


class JobWriteError(JobError):
    """A write to the run directory failed; the files were rolled back to the last commit."""

    def __init__(self, path: Path, err: OSError, note: str = "") -> None:
        self.path = path
        self.errno = err.errno
        name = _errno.errorcode.get(err.errno or 0, "?")
        text = err.strerror or str(err)
        tail = f"; {note}" if note else ""
        super().__init__(f"cannot write {path}: {text} ({name}){tail}")
