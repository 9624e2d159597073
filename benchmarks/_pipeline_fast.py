"""What the worker would cost with the fixes bench_pipeline.py suggests, run for real.

`fast_range` is a drop-in for `evtui.frames.pipeline.render_range` (same arguments, same
EncodedWindow list) for cdframe with duration windows, changed in three ways only:

1. windows are views into one decoded range (no per-window copy of padded records);
2. cdframe is drawn by `SlidingCD`: the last event per render pixel is kept across the
   range's overlapping windows, so each window costs its new events plus one pass over
   the pixels, and coordinates are scaled by lookup tables instead of in place;
3. the pixel hash is taken over the label plane (one byte a pixel), not the RGB image.

The JPEG settings and everything after the worker are unchanged. `run_job` runs the real
`evtui run` path (Job.open, job.run, the job store) with render_range replaced by this
one: `python _pipeline_fast.py CONFIG RECORDING RUN_DIR WORKERS [process|thread] [fast|std]`
(`std` keeps evtui's own render_range: the way to compare pool kinds on the real path).
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Sequence

import numpy as np
from _pipeline_stages import SlidingCD

from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.types import concat_events
from evtui.events.windows import sort_by_time
from evtui.frames.encode import encode_frame, frame_pixel_hash
from evtui.frames.pipeline import EncodedWindow, FramePlan, _recording


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
    t = np.ascontiguousarray(ev["t"])
    cd = SlidingCD(sensor, size)
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
        n = int(hi - lo)
        if n < plan.min_events:
            reason = f"near-empty: {n} events < floor {plan.min_events}"
            out.append(EncodedWindow(k, a, b, n, skip_reason=reason))
            continue
        img = cd.frame(ev[lo:hi], a, b)
        enc = encode_frame(img, plan.encode, pixel_hash="")
        out.append(
            EncodedWindow(
                k, a, b, n, enc.data, enc.media_type, enc.width, enc.height,
                base64.b64encode(enc.data).decode("ascii"), frame_pixel_hash(cd.label),
            )
        )  # fmt: skip
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
