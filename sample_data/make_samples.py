"""Regenerate every sample recording in this folder, byte for byte, from one seed.

    python sample_data/make_samples.py             # rewrite the files in sample_data/
    python sample_data/make_samples.py --check     # regenerate in a temp dir and compare
    python sample_data/make_samples.py --out DIR   # write (or --check against) DIR

All six files hold the same events, simulated by `evtui.events.synth` from the default
scene script and written through evtui's own writers; `scene.json` holds the scene's
ground truth (segments with labels and scene ids), the settings and a digest of the
events. `--check` exits 1 when a committed file differs from what the code makes now.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from evtui.events.errors import RecordingError  # noqa: E402
from evtui.events.io import open_writer  # noqa: E402
from evtui.events.synth import DEFAULT_SCRIPT, SimConfig, scene_segments, simulate  # noqa: E402

SEED = 7
CONFIG = SimConfig(width=320, height=240, seed=SEED, noise_rate_hz=0.05)
"""320x240 (DVXplorer Lite size); noise 0.05 Hz/pixel keeps static stretches sparse."""

OUTPUTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sample.evt3.raw", "evt3", {}),
    ("sample.evt2.raw", "evt2", {}),
    ("sample.dat", "dat", {}),
    ("sample.aedat4", "aedat4", {"compression": "lz4"}),
    ("sample.h5", "hdf5", {}),
    ("sample.npz", "npz", {}),
)
SCENE_JSON = "scene.json"
MAX_TOTAL_BYTES = 8_000_000
"""The repository budget for all sample files together."""

PACKED = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
"""The 13-byte record the events digest is taken over (independent of EVENT_DTYPE padding)."""


def generate(out_dir: Path) -> dict[str, Any]:
    """Simulate once, stream every chunk into all six writers, then write scene.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    count = 0
    t_first = t_last = None
    with ExitStack() as stack:
        writers = []
        for name, fmt, options in OUTPUTS:
            try:
                w = open_writer(out_dir / name, CONFIG.width, CONFIG.height, format=fmt, **options)
            except (ImportError, KeyError, AttributeError) as e:
                raise SystemExit(f"make_samples: no {fmt} writer in evtui yet ({e})") from None
            writers.append(stack.enter_context(w))
        for chunk in simulate(DEFAULT_SCRIPT, CONFIG):
            for w in writers:
                w.write(chunk)
            packed = np.empty(len(chunk), PACKED)
            for field in ("t", "x", "y", "p"):
                packed[field] = chunk[field]
            digest.update(packed.tobytes())
            count += len(chunk)
            t_first = int(chunk["t"][0]) if t_first is None else t_first
            t_last = int(chunk["t"][-1])
    scene = {
        "generator": "sample_data/make_samples.py (evtui.events.synth)",
        "seed": SEED,
        "sensor": {"width": CONFIG.width, "height": CONFIG.height},
        "events": {
            "count": count,
            "t_first_us": t_first,
            "t_last_us": t_last,
            "sha256": digest.hexdigest(),
            "sha256_of": "packed records t<i8 x<u2 y<u2 p<u1, in stream order",
        },
        "segments": [asdict(s) for s in scene_segments(DEFAULT_SCRIPT, CONFIG.t0_us)],
        "files": [
            {
                "name": name,
                "format": fmt,
                "options": options,
                "bytes": (out_dir / name).stat().st_size,
            }
            for name, fmt, options in OUTPUTS
        ],
        "simulator": CONFIG.as_dict(),
        "script": [asdict(shot) for shot in DEFAULT_SCRIPT],
    }
    (out_dir / SCENE_JSON).write_text(json.dumps(scene, indent=2) + "\n", encoding="utf-8")
    return scene


def _first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.frombuffer(a[:n], np.uint8) != np.frombuffer(b[:n], np.uint8))
    return int(diff[0]) if len(diff) else n


def check(committed: Path) -> list[str]:
    """Regenerate in a scratch folder; one line per file that differs from `committed`."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="evtui-samples-") as tmp:
        fresh = Path(tmp)
        generate(fresh)
        for name in [o[0] for o in OUTPUTS] + [SCENE_JSON]:
            old = committed / name
            if not old.is_file():
                problems.append(f"{old}: missing")
                continue
            a, b = old.read_bytes(), (fresh / name).read_bytes()
            if a != b:
                problems.append(
                    f"{old}: differs from the regenerated file at byte "
                    f"{_first_difference(a, b)} ({len(a)} bytes committed, {len(b)} made now)"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder (default: sample_data/)")
    parser.add_argument(
        "--check", action="store_true", help="compare with the files in --out instead of writing"
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check(args.out)
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print("make_samples: regenerate with sample_data/make_samples.py", file=sys.stderr)
                return 1
            print(f"make_samples: all {len(OUTPUTS) + 1} files in {args.out} are up to date")
            return 0
        scene = generate(args.out)
    except RecordingError as e:
        print(f"make_samples: {e}", file=sys.stderr)
        return 1
    total = sum(f["bytes"] for f in scene["files"])
    for f in scene["files"]:
        n = scene["events"]["count"]
        print(f"{f['name']:<18} {f['bytes']:>10,} bytes  {f['bytes'] / n:5.2f} B/event")
    print(f"{scene['events']['count']:,} events, {total:,} bytes in all")
    if total > MAX_TOTAL_BYTES:
        print(f"make_samples: over the {MAX_TOTAL_BYTES:,}-byte budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
