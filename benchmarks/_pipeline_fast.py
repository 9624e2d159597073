"""What the worker would cost if each range were decoded in one go, run for real.

`fast_range` is a drop-in for `evtui.frames.pipeline.render_range` (same arguments, same
EncodedWindow list) for cdframe with duration windows, changed in one way only: a range
is decoded and time-sorted once, and its windows are read-only views into that array
instead of windows sliced from a stream (`Recording.windows_between`), which re-joins its
buffer with every decoded block. Drawing, encoding and hashing are the pipeline's own
(`_one`). The price is memory: a whole range of events at once, which the streaming
slicer never needs (sparse resume ranges can span many windows).

`run_job` runs the real `evtui run` path (Job.open, job.run, the job store) with
render_range replaced by this one:
`python _pipeline_fast.py CONFIG RECORDING RUN_DIR WORKERS [process|thread] [fast|std]`
(`std` keeps evtui's own render_range: the way to compare pool kinds on the real path).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import numpy as np

from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.types import concat_events
from evtui.events.windows import Window, sort_by_time
from evtui.frames.pipeline import EncodedWindow, FramePlan, _drawer, _one, _recording


def fast_range(
    plan: FramePlan, k0: int, k1: int, wanted: Sequence[int] | None = None
) -> list[EncodedWindow]:
    rec, sensor = _recording(plan.path)
    size = plan.size or sensor
    spec = plan.window
    if plan.method != "cdframe" or spec.duration_us is None or plan.params:
        raise ValueError("fast_range draws default cdframe over duration windows only")
    idx = rec.index()
    start = spec.start_us if spec.start_us is not None else idx.t_first
    a0 = start + k0 * spec.step
    t_end = start + (k1 - 1) * spec.step + spec.duration_us
    i, j = idx.entries_for_time(a0 - BACKWARD_TOLERANCE_US, t_end + BACKWARD_TOLERANCE_US)
    j = min(j + 1, len(idx.positions))
    ev = sort_by_time(concat_events(list(rec._decode(i, j))))
    ev.flags.writeable = False
    t = ev["t"]
    draw = _drawer(plan, sensor, size)
    want = None if wanted is None else set(wanted)
    out: list[EncodedWindow] = []
    for k in range(k0, k1):
        if want is not None and k not in want:
            continue
        a = start + k * spec.step
        b = a + spec.duration_us
        if spec.end_us is not None:
            b = min(b, spec.end_us)
        lo, hi = np.searchsorted(t, [a, b])
        out.append(_one(plan, Window(k, a, b, ev[lo:hi]), sensor, size, draw))
    return out


def run_job(
    config: str,
    recording: str,
    run_dir: str,
    workers: int,
    kind: str = "process",
    fast: bool = True,
) -> int:
    """The real job (fast_range in the workers unless `fast` is False; a `kind` pool of
    `workers`); 0 when every frame is recorded."""
    import evtui.frames.pipeline as pipeline
    from evtui.config import load_config
    from evtui.engine.job import Job

    if fast:
        pipeline.render_range = fast_range  # encoded_windows looks it up at call time
    cfg = load_config(config)
    ex = pipeline.make_executor(kind, workers)
    job = Job.open(cfg, recording, run_dir, executor=ex)
    try:
        res = asyncio.run(job.run())
    finally:
        job.close()
        ex.shutdown(wait=True, cancel_futures=True)
    print(f"{res.state}: {res.done} done, {res.failed} failed, {res.skipped} skipped")
    return 0 if res.state == "done" and not res.failed else 1


if __name__ == "__main__":
    # CONFIG RECORDING RUN_DIR WORKERS [process|thread] [fast|std]
    a = sys.argv[1:]
    kind = a[4] if len(a) > 4 else "process"
    sys.exit(
        run_job(a[0], a[1], a[2], int(a[3]), kind, fast=(a[5] if len(a) > 5 else "fast") == "fast")
    )
