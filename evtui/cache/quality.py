"""How often the near-duplicate match hits, and how often wrongly, where the truth is known.

The bundled sample is simulated from a scene script, so each window's true content is known:
the scene segments (`scene.json`) it overlaps. `replay` runs a recording's frames through a
cache the way the engine does (look up; on a miss, caption and put) and checks every hit
against that truth:

* a hit is **false** when the query window and the source window share no segment
  (`scene_id`): the reused caption describes something the frame does not show;
* a hit is **label-false** when their majority segments differ: stricter, it also counts a
  window straddling a cut that reuses the caption of the other side of the cut.

Rates are per lookup (every frame is one lookup). Static stretches of the sample are pure
sensor noise (sample_data/README.md): their fingerprints are as random as the noise, so
they do not match each other, and they should not: views with different `scene_id`s look
exactly alike there, so any reuse among them would be a false hit half of the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evtui.cache.semantic import SemanticCache
from evtui.events.recording import Recording
from evtui.events.render import renderer
from evtui.events.windows import WindowSpec
from evtui.frames.encode import frame_pixel_hash
from evtui.frames.fingerprint import fingerprint

Segment = tuple[int, int, str, bool]
"""(t0_us, t1_us, scene_id, static)."""


@dataclass(frozen=True)
class TruthFrame:
    """A rendered window and what it truly shows."""

    index: int
    image: np.ndarray
    content: frozenset[str]  # scene_ids of every segment the window overlaps
    label: str  # the segment covering most of the window
    static: bool  # entirely inside one static segment


@dataclass
class ReplayStats:
    lookups: int = 0
    hits: int = 0
    exact_hits: int = 0
    false_hits: int = 0
    label_false_hits: int = 0
    static_frames: int = 0
    static_hits: int = 0
    moving_frames: int = 0
    moving_hits: int = 0

    def __iadd__(self, other: ReplayStats) -> ReplayStats:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)
        return self

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def false_hit_rate(self) -> float:
        return self.false_hits / self.lookups if self.lookups else 0.0

    @property
    def label_false_hit_rate(self) -> float:
        return self.label_false_hits / self.lookups if self.lookups else 0.0

    @property
    def static_hit_rate(self) -> float:
        return self.static_hits / self.static_frames if self.static_frames else 0.0

    @property
    def moving_hit_rate(self) -> float:
        return self.moving_hits / self.moving_frames if self.moving_frames else 0.0

    def summary(self) -> str:
        return (
            f"{self.lookups} frames: hit {self.hit_rate:.1%} (moving {self.moving_hit_rate:.1%}, "
            f"static {self.static_hit_rate:.1%}), false hits {self.false_hits} "
            f"({self.false_hit_rate:.2%}), label-false {self.label_false_hits} "
            f"({self.label_false_hit_rate:.2%})"
        )


def load_segments(scene_json: str | Path) -> list[Segment]:
    """The ground-truth segments of a simulated recording's `scene.json`."""
    scene = json.loads(Path(scene_json).read_text())
    return [
        (int(s["t0_us"]), int(s["t1_us"]), str(s["scene_id"]), bool(s["static"]))
        for s in scene["segments"]
    ]


def truth_frames(
    recording: str | Path,
    segments: Sequence[Segment],
    *,
    method: str = "cdframe",
    window_us: int = 33_000,
    offset_us: int = 0,
) -> Iterator[TruthFrame]:
    """Rendered windows of `recording` with their true content, in time order."""
    rec = Recording(recording, use_cache=False)
    width, height = rec.size
    draw = renderer(method, width, height)
    spec = WindowSpec(duration_us=window_us, start_us=offset_us)
    for win in rec.windows(spec):
        overlap = [
            (min(win.t1_us, t1) - max(win.t0_us, t0), sid, static)
            for t0, t1, sid, static in segments
            if min(win.t1_us, t1) > max(win.t0_us, t0)
        ]
        if not overlap:
            continue
        _, label, static = max(overlap)
        yield TruthFrame(
            win.index,
            draw(win),
            frozenset(sid for _, sid, _ in overlap),
            label,
            static and len(overlap) == 1,
        )


def replay(
    cache: SemanticCache,
    frames: Iterable[TruthFrame],
    *,
    variant: str,
    prompt_version: str = "quality",
    target: str = "sim/quality",
) -> ReplayStats:
    """Look every frame up in order; put it on a miss; count right and wrong hits."""
    st = ReplayStats()
    for fr in frames:
        ph = frame_pixel_hash(fr.image)
        fp = fingerprint(fr.image)
        key = {"prompt_version": prompt_version, "target": target, "scope": "target"}
        hit = cache.lookup(ph, fp, variant=variant, **key)
        st.lookups += 1
        st.static_frames += fr.static
        st.moving_frames += not fr.static
        if hit is None:
            extra = {"content": sorted(fr.content), "label": fr.label}
            cache.put(
                ph,
                fp,
                caption=fr.label,
                frame=fr.index,
                recording=variant,
                extra=extra,
                variant=variant,
                **key,
            )
            continue
        st.hits += 1
        st.exact_hits += hit.kind == "exact"
        st.static_hits += fr.static
        st.moving_hits += not fr.static
        st.false_hits += not (fr.content & set(hit.extra.get("content", ())))
        st.label_false_hits += hit.extra.get("label") != fr.label
    return st


def measure_sample(
    cache: SemanticCache,
    sample_dir: str | Path,
    *,
    methods: Sequence[str] = ("cdframe", "histogram"),
    window_us: int = 33_000,
    offsets_us: Sequence[int] = (0, 11_000, 22_000),
) -> ReplayStats:
    """Replay the bundled sample for each renderer and window phase, each in its own
    partition (a fresh job each), and add the counts up."""
    sample_dir = Path(sample_dir)
    segments = load_segments(sample_dir / "scene.json")
    total = ReplayStats()
    for method in methods:
        for offset in offsets_us:
            frames = truth_frames(
                sample_dir / "sample.npz",
                segments,
                method=method,
                window_us=window_us,
                offset_us=offset,
            )
            total += replay(cache, frames, variant=f"{method}/{window_us}/{offset}")
    return total
