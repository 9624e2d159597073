"""The final result of every key, read back from a run directory in (frame, target) order.

captions.jsonl is in completion order and a million-frame run does not fit in memory as
dicts, so a first pass keeps only (key, frame, byte range) per line in numpy arrays, sorts
them, and a second pass parses the lines in that order from a memory map.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from evtui.jobs import lines
from evtui.jobs.layout import CAPTIONS, LEDGER
from evtui.jobs.state import EXPECT_DONE, EXPECT_LEDGER, MAX_FRAME, record_key

_CODES = {"done": 0, "failed": 1, "skipped": 2}


def final_records(
    run_dir: str | Path,
    frame: int | None = None,
    states: Sequence[str] = ("done", "failed", "skipped"),
    ends: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Per (frame, target, prompt_version): the done result, else its last failed/skipped one.

    Readable while a writer appends: only lines complete when called (or up to `ends`).
    """
    run_dir = Path(run_dir)
    if ends is None:
        ends = {n: lines.complete_size(run_dir / n) for n in (CAPTIONS, LEDGER)}
    want = {s for s in states if s in _CODES}
    if frame is not None:
        yield from _one_frame(run_dir, frame, want, ends)
        return
    keys: dict[tuple[str, str], int] = {}
    cap = _index(run_dir / CAPTIONS, ends[CAPTIONS], True, keys)
    led = _index(run_dir / LEDGER, ends[LEDGER], False, keys)
    if not keys:
        return
    n_keys = len(keys)
    done_comp = cap["kid"] * (1 << 40) + cap["frame"]
    # ledger: the last line of a key wins, and only for keys not done
    comp = led["kid"] * (1 << 40) + led["frame"]
    _, first_rev = np.unique(comp[::-1], return_index=True)
    last = np.sort(comp.size - 1 - first_rev)
    last = last[~np.isin(comp[last], done_comp)]
    # captions: one line per key by construction; keep the first if a file says otherwise
    _, first = np.unique(done_comp, return_index=True)
    parts = [(0, cap, np.sort(first)), (1, led, last)]
    cols = {k: [] for k in ("file", "kid", "frame", "start", "length", "code")}
    for file_id, idx, sel in parts:
        cols["file"].append(np.full(sel.size, file_id, np.int8))
        for k in ("kid", "frame", "start", "length", "code"):
            cols[k].append(idx[k][sel])
    arr = {k: np.concatenate(v) for k, v in cols.items()}
    keep = np.isin(arr["code"], [_CODES[s] for s in want])
    arr = {k: v[keep] for k, v in arr.items()}
    rank = np.empty(n_keys, np.int64)
    for i, k in enumerate(sorted(keys)):
        rank[keys[k]] = i
    order = np.lexsort((rank[arr["kid"]], arr["frame"]))
    maps = [_map(run_dir / CAPTIONS, ends[CAPTIONS]), _map(run_dir / LEDGER, ends[LEDGER])]
    try:
        for i in order.tolist():
            mm = maps[arr["file"][i]]
            s = int(arr["start"][i])
            yield orjson.loads(mm[s : s + int(arr["length"][i])])
    finally:
        for mm in maps:
            if mm is not None:
                mm.close()


def _map(path: Path, end: int) -> Any:
    if end <= 0:
        return None
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), end, access=mmap.ACCESS_READ)


def _index(
    path: Path, end: int, done_file: bool, keys: dict[tuple[str, str], int]
) -> dict[str, np.ndarray]:
    """(kid, frame, start, length, code) of every line that carries a state."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("kid", "frame", "start", "length", "code")}
    if path.exists():
        for block in lines.scan(path, 0, end):
            nl = np.flatnonzero(np.frombuffer(block.raw, np.uint8) == 10)
            starts = np.concatenate([[0], nl[:-1] + 1])
            kid, frame, code, rows = [], [], [], []
            for i, r in enumerate(block.items):
                f, t, pv, st = record_key(r)
                c = _CODES.get(st) if isinstance(st, str) else None
                if not done_file and st == "duplicate":
                    continue  # paid for, but no state of its own
                if c is None or (c == 0) != done_file:
                    block.corrupt(i, EXPECT_DONE if done_file else EXPECT_LEDGER)
                if type(f) is not int or not 0 <= f < MAX_FRAME or type(t) is not str:
                    block.corrupt(i, EXPECT_DONE if done_file else EXPECT_LEDGER)
                k = keys.get((t, pv))
                if k is None:
                    k = keys[(t, pv)] = len(keys)
                kid.append(k)
                frame.append(f)
                code.append(c)
                rows.append(i)
            r_idx = np.asarray(rows, np.int64)
            cols["kid"].append(np.asarray(kid, np.int64))
            cols["frame"].append(np.asarray(frame, np.int64))
            cols["code"].append(np.asarray(code, np.int64))
            cols["start"].append(starts[r_idx] + block.offset)
            cols["length"].append(nl[r_idx] - starts[r_idx])
    return {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in cols.items()}


def _one_frame(
    run_dir: Path, frame: int, want: set[str], ends: dict[str, int]
) -> Iterator[dict[str, Any]]:
    done: dict[tuple[str, str], dict[str, Any]] = {}
    other: dict[tuple[str, str], dict[str, Any]] = {}
    if (run_dir / CAPTIONS).exists():
        for r in lines.grep_frame(run_dir / CAPTIONS, frame, ends[CAPTIONS]):
            _, t, pv, st = record_key(r)
            if st == "done":
                done.setdefault((str(t), str(pv)), r)
    if (run_dir / LEDGER).exists():
        for r in lines.grep_frame(run_dir / LEDGER, frame, ends[LEDGER]):
            _, t, pv, st = record_key(r)
            if st in ("failed", "skipped"):
                other[(str(t), str(pv))] = r
    merged = {**{k: v for k, v in other.items() if k not in done}, **done}
    for k in sorted(merged):
        if merged[k]["state"] in want:
            yield merged[k]


def review_map(reviews: Sequence[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """The latest decision per (frame, target)."""
    return {(r["frame"], r["target"]): r for r in reviews}
