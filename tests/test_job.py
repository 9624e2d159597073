"""A Job on its engine thread, as the TUI drives it: previews, reruns, reviews."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evtui.config import parse_config
from evtui.engine.job import Job, render_size
from evtui.jobs.layout import LEDGER
from evtui.jobs.lines import grep_frame
from tests.engine_support import (
    COMPARE_CONFIG,
    KEYS,
    SAMPLE,
    sim_in_thread,
    wait,
    write_config,
)


def test_job_thread_preview_rerun_and_review(tmp_path: Path) -> None:
    with sim_in_thread() as sim:
        path = write_config(tmp_path / "job.yaml", COMPARE_CONFIG, sim)
        cfg = parse_config(path.read_text(), str(path), env=KEYS)
        job = Job.open(cfg, SAMPLE, tmp_path / "run", workers=1)
        try:
            th = job.start_thread()
            wait(lambda: th.snapshot.state == "idle")
            assert th.snapshot.done + th.snapshot.skipped == 2 * job.n_frames
            img = job.preview(10)
            assert img.shape == (120, 160, 3) and img.dtype == np.uint8 and img.any()
            other = job.preview(10, method="histogram")
            assert not np.array_equal(img, other)
            before = sim.stats.count()
            job.rerun(10, ["openai/gpt-4o"])
            wait(lambda: sim.stats.count() == before + 1)
            wait(lambda: any(r.get("rerun") for r in grep_frame(tmp_path / "run" / LEDGER, 10)))
            (again,) = [r for r in grep_frame(tmp_path / "run" / LEDGER, 10) if r.get("rerun")]
            assert again["target"] == "openai/gpt-4o" and again["caption"]
            first = [r for r in job.store.results(frame=10) if r["target"] == "openai/gpt-4o"]
            assert first and first[0]["caption"]  # the first answer is kept as it was
            job.store.add_review(
                {"frame": 10, "target": "openai/gpt-4o", "decision": "edit", "text": "a car"}
            )
            assert job.store.reviews()[-1]["text"] == "a car"
            th.drain()
            result = th.join(30)
            assert result is not None and result.state == "done"
        finally:
            job.close()


def test_render_size_is_what_the_models_use() -> None:
    text = COMPARE_CONFIG.replace("@openai", "http://127.0.0.1:1/v1").replace(
        "@anthropic", "http://127.0.0.1:1"
    )
    cfg = parse_config(text.replace("render: {window: 100ms, width: 160, height: 120}", ""),
                       env=KEYS)  # fmt: skip
    # Claude keeps a 1280x720 frame whole; nothing renders above the sensor.
    assert render_size(cfg, (1280, 720)) == (1280, 720)
    low = cfg.model_copy(
        update={"targets": tuple(t.model_copy(update={"detail": "low"}) for t in cfg.targets)}
    )
    w, h = render_size(low, (2560, 1440))
    assert w * h < 2560 * 1440
