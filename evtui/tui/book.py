"""What the app knows about every frame: its answers per target, its reviews, its flags.

Filled once from the job directory when the app opens, then from the engine's caption
events as they arrive; it never writes anything (reviews go through the job store and
come back here). Per-frame flags are numpy arrays, so filtering and "next failed frame"
over thousands of frames cost microseconds, not a loop.

Each (frame, column) keeps every answer in arrival order: the first one the job
recorded and any reruns after it. The view shows the newest caption; the first stays
reachable (explain view), as the job files keep it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from evtui.tui.diff import content_words, disagree

PENDING, DONE, FAILED, SKIPPED = 0, 1, 2, 3
STATE_CODE = {"done": DONE, "failed": FAILED, "skipped": SKIPPED, "duplicate": DONE}
ROUTE = "route"

# Filter name -> what the frame list then holds.
FILTERS: dict[str, str] = {
    "all": "every frame",
    "failed": "frames with a failed caption",
    "cache": "frames answered from the cache",
    "skipped": "frames skipped (near-empty)",
    "disagree": "frames whose providers disagree",
    "unreviewed": "captioned frames not reviewed yet",
}
REVIEW_DECISIONS = ("accept", "reject", "edit")

Result = dict[str, Any]


def column_of(r: Mapping[str, Any]) -> str:
    """The caption column a result belongs to: who answered (or its slot when nobody did)."""
    return str(r.get("target") or r.get("slot") or ROUTE)


class FrameBook:
    """Answers, reviews and flags of `n_frames` frames for the given slots and columns."""

    def __init__(self, n_frames: int, slots: Sequence[str], columns: Sequence[str]) -> None:
        self.n = max(int(n_frames), 0)
        self.slots = tuple(slots)
        self.columns = tuple(columns)
        self._slot_index = {s: i for i, s in enumerate(self.slots)}
        self.answers: dict[int, dict[str, list[Result]]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.state = np.zeros((max(len(self.slots), 1), self.n), np.uint8)
        self.cache = np.zeros(self.n, bool)
        self.reviewed = np.zeros(self.n, bool)
        self.disagree = np.zeros(self.n, bool)
        self.version = 0  # bumped on every change: views redraw when it moves
        self.touched: set[int] = set()  # frames changed since the caller last cleared it
        self._unchecked: set[int] = set()  # frames whose disagreement flag is stale
        self._words: dict[str, frozenset[str]] = {}  # caption -> content words

    # -- filling ------------------------------------------------------------------------
    def load(self, results: Iterable[Result], reruns: Iterable[Result] = ()) -> None:
        """The job's final results, then the rerun answers kept beside them (ledger)."""
        for r in results:
            self.add(r)
        for r in reruns:
            f = _frame(r)
            if f is None or not 0 <= f < self.n:
                continue
            have = self.answers.get(f, {}).get(column_of(r), [])
            if r not in have:
                self.add(r)
        self.settle()

    def add(self, r: Result) -> None:
        """One result (from the files or a caption event), in the order it was made."""
        f = _frame(r)
        if f is None or not 0 <= f < self.n:
            return
        col = column_of(r)
        self.answers.setdefault(f, {}).setdefault(col, []).append(r)
        slot = str(r.get("slot") or col)
        si = self._slot_index.get(slot, 0)
        code = STATE_CODE.get(str(r.get("state")), PENDING)
        cur = int(self.state[si, f])
        # done wins over failed/skipped (as in the job store); otherwise the newest counts
        if not (cur == DONE and code != DONE):
            self.state[si, f] = code
        if r.get("cache_hit"):
            self.cache[f] = True
        self._recheck(f)

    def add_review(self, rv: Mapping[str, Any]) -> None:
        f = _frame(rv)
        if f is None or not 0 <= f < self.n:
            return
        self.reviews.setdefault(f, []).append(dict(rv))
        self.reviewed[f] = True
        self.touched.add(f)
        self.version += 1

    def _recheck(self, f: int) -> None:
        self._unchecked.add(f)
        self.touched.add(f)
        self.version += 1

    def settle(self, until: float | None = None) -> bool:
        """Recompute the disagreement flags of frames that got answers since the last call:
        once per frame per batch of events, not once per answer. With `until` (a
        `time.perf_counter()` deadline) it stops there; True when every flag is current."""
        pending = self._unchecked
        while pending:
            f = pending.pop()
            caps = self.captions(f)
            if len(caps) > 1:
                self.disagree[f] = disagree(caps, self._content_words)
            if until is not None and time.perf_counter() >= until:
                break
        return not pending

    def _content_words(self, caption: str) -> frozenset[str]:
        got = self._words.get(caption)
        if got is None:
            if len(self._words) > 100_000:
                self._words.clear()
            got = self._words[caption] = content_words(caption)
        return got

    # -- reading ------------------------------------------------------------------------
    def history(self, f: int, col: str) -> list[Result]:
        """Every answer of a column for frame f, first recorded first."""
        return self.answers.get(f, {}).get(col, [])

    def newest(self, f: int, col: str) -> Result | None:
        """The answer to show: the newest caption, else the newest failure or skip."""
        hist = self.history(f, col)
        for r in reversed(hist):
            if r.get("state") in ("done", "duplicate") and isinstance(r.get("caption"), str):
                return r
        return hist[-1] if hist else None

    def columns_for(self, f: int) -> list[str]:
        """The configured columns, plus any other who answered this frame."""
        extra = [c for c in self.answers.get(f, {}) if c not in self.columns]
        return [*self.columns, *extra]

    def captions(self, f: int) -> dict[str, str]:
        out = {}
        for col in self.answers.get(f, {}):
            r = self.newest(f, col)
            if r is not None and isinstance(r.get("caption"), str):
                out[col] = r["caption"]
        return out

    def decision(self, f: int, col: str) -> dict[str, Any] | None:
        """The last accept/reject/edit of a column's caption."""
        for rv in reversed(self.reviews.get(f, [])):
            if rv.get("target") == col and rv.get("decision") in REVIEW_DECISIONS:
                return rv
        return None

    def preferred(self, f: int) -> str | None:
        for rv in reversed(self.reviews.get(f, [])):
            if rv.get("decision") == "prefer":
                return str(rv.get("target"))
        return None

    def answered(self) -> np.ndarray:
        return (self.state == DONE).any(axis=0)

    def mask(self, name: str) -> np.ndarray:
        """Which frames a filter keeps (FILTERS names)."""
        if name == "failed":
            return (self.state == FAILED).any(axis=0)
        if name == "skipped":
            return (self.state == SKIPPED).any(axis=0)
        if name == "cache":
            return self.cache.copy()
        if name == "disagree":
            self.settle()
            return self.disagree.copy()
        if name == "unreviewed":
            return self.answered() & ~self.reviewed
        if name == "all":
            return np.ones(self.n, bool)
        raise KeyError(name)

    def next_in(self, mask: np.ndarray, f: int, step: int = 1) -> int | None:
        """The first frame after f (before f when step < 0) that the mask keeps."""
        idx = np.flatnonzero(mask)
        if step > 0:
            i = int(np.searchsorted(idx, f, side="right"))
            return int(idx[i]) if i < idx.size else None
        i = int(np.searchsorted(idx, f, side="left")) - 1
        return int(idx[i]) if i >= 0 else None


def _frame(r: Mapping[str, Any]) -> int | None:
    try:
        return int(r["frame"])
    except (KeyError, TypeError, ValueError):
        return None


__all__ = ["DONE", "FAILED", "FILTERS", "PENDING", "SKIPPED", "FrameBook", "column_of"]
