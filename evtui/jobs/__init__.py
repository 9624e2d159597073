"""Job directories, resumable state and outputs.

`JobStore.open(run_dir, manifest)` creates or resumes a run; `commit` makes results
durable; `read_status` reads a live run without disturbing it. See layout.py for the
directory layout.
"""

from evtui.jobs.errors import JobCorrupt, JobError, JobLocked, JobMismatch, JobWriteError
from evtui.jobs.manifest import Difference
from evtui.jobs.status import read_status
from evtui.jobs.store import Completed, JobStore

__all__ = [
    "Completed",
    "Difference",
    "JobCorrupt",
    "JobError",
    "JobLocked",
    "JobMismatch",
    "JobStore",
    "JobWriteError",
    "read_status",
]
