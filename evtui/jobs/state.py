"""The in-memory ledger: one state byte per (target, prompt version, frame), rebuilt from disk.

A million-frame, three-target run has three million keys; a dict of tuples would cost
~600 MB, these arrays cost 5 bytes a key and answer "what is left" in one numpy pass.

Merge rule, the same whether read at open, by `read_status` or applied after a commit:
`captions.jsonl` holds only done results and done is final; in `ledger.jsonl` the last
failed/skipped line of a key wins; "duplicate" lines (a result for a key already done)
count toward spend and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

PENDING, FAILED, SKIPPED, DONE = 0, 1, 2, 3
STATE_NAMES = ("pending", "failed", "skipped", "done")
LEDGER_STATES = {"failed": FAILED, "skipped": SKIPPED, "duplicate": -1}
# Columns of the per-key sums.
COST, TOKENS_IN, TOKENS_OUT, CACHE_HITS, DUPLICATES = range(5)
NO_REASON = "(no reason given)"
# States are dense arrays indexed by frame (5 bytes a frame per key): a bound keeps a bogus
# index from allocating gigabytes.
MAX_FRAME = 2**31

EXPECT_DONE = (
    "expected a JSON object with frame (int in [0, 2**31)), target (or slot) and state 'done'"
)
EXPECT_LEDGER = (
    "expected a JSON object with frame (int in [0, 2**31)), target (or slot) and state"
    " 'failed', 'skipped' or 'duplicate'"
)


def record_key(r: Any) -> tuple[Any, Any, Any, Any]:
    """(frame, target, prompt version, state) a record counts under.

    The target is the record's `target`, else its `slot` (the engine's route-mode slot
    "route" when no target was picked, e.g. a frame skipped before routing); a missing
    prompt version is "" (counted with every version). Invalid parts come back as None.
    """
    if type(r) is not dict:
        return None, None, None, None
    t = r.get("target") or r.get("slot")
    pv = r.get("prompt_version")
    return r.get("frame"), t, "" if pv is None else pv, r.get("state")


def _num(v: Any) -> float:
    return v if type(v) is float or type(v) is int else 0.0


class Table:
    """States, reasons and spend of every key seen so far."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.index: dict[tuple[str, str], int] = {}
        self.state: list[np.ndarray] = []
        self.reason: list[np.ndarray] = []
        self.reasons: list[str] = []
        self.reason_index: dict[str, int] = {}
        self.sums = np.zeros((0, 5), np.float64)

    # -- keys -------------------------------------------------------------------------
    def key_id(self, target: str, prompt_version: str) -> int:
        k = (target, prompt_version)
        kid = self.index.get(k)
        if kid is None:
            kid = self.index[k] = len(self.keys)
            self.keys.append(k)
            self.state.append(np.zeros(0, np.uint8))
            self.reason.append(np.zeros(0, np.int32))
            self.sums = np.vstack([self.sums, np.zeros((1, 5))])
        return kid

    def reason_id(self, reason: Any) -> int:
        text = reason if isinstance(reason, str) and reason else NO_REASON
        rid = self.reason_index.get(text)
        if rid is None:
            rid = self.reason_index[text] = len(self.reasons)
            self.reasons.append(text)
        return rid

    def get(self, kid: int, frame: int) -> int:
        arr = self.state[kid]
        return int(arr[frame]) if frame < arr.size else PENDING

    def _grow(self, kid: int, n: int) -> None:
        arr = self.state[kid]
        if n <= arr.size:
            return
        size = max(n, arr.size + arr.size // 2, 1024)
        grown = np.zeros(size, np.uint8)
        grown[: arr.size] = arr
        self.state[kid] = grown
        reason = np.zeros(size, np.int32)
        reason[: arr.size] = self.reason[kid]
        self.reason[kid] = reason

    # -- merging ----------------------------------------------------------------------
    def apply(
        self,
        kids: np.ndarray,
        frames: np.ndarray,
        codes: np.ndarray,
        reasons: np.ndarray,
    ) -> None:
        """Apply records in file order: done is final, otherwise the last line of a key wins."""
        if kids.size == 0:
            return
        comp = kids.astype(np.int64) << 40 | frames.astype(np.int64)
        _, first_rev = np.unique(comp[::-1], return_index=True)
        last = comp.size - 1 - first_rev
        for kid in np.unique(kids[last]).tolist():
            sel = last[kids[last] == kid]
            f, c, r = frames[sel], codes[sel], reasons[sel]
            self._grow(kid, int(f.max()) + 1)
            state, reason = self.state[kid], self.reason[kid]
            keep = (state[f] != DONE) | (c == DONE)
            state[f[keep]] = c[keep]
            reason[f[keep]] = r[keep]

    def add_sums(self, kids: np.ndarray, values: np.ndarray) -> None:
        """Add per-record sums (columns COST..DUPLICATES) to their keys."""
        if kids.size == 0:
            return
        n = len(self.keys)
        for col in range(values.shape[1]):
            self.sums[:, col] += np.bincount(kids, weights=values[:, col], minlength=n)

    def ingest(self, items: Iterable[Any], done_file: bool, corrupt: Any = None) -> None:
        """Validate and apply records parsed from captions (done_file) or the ledger.

        `corrupt(i, expected)` raises for the i-th item; without it a bad item is a ValueError.
        """
        sum_kids: list[int] = []
        sums: list[tuple[float, float, float, float, float]] = []
        kids: list[int] = []
        frames: list[int] = []
        codes: list[int] = []
        rids: list[int] = []
        index, expect = self.index, EXPECT_DONE if done_file else EXPECT_LEDGER
        for i, r in enumerate(items):
            f, t, pv, st = record_key(r)
            if done_file:
                code = DONE if st == "done" else None
            else:
                code = LEDGER_STATES.get(st) if isinstance(st, str) else None
            if (
                type(f) is not int
                or not 0 <= f < MAX_FRAME
                or type(t) is not str
                or type(pv) is not str
                or code is None
            ):
                if corrupt is None:
                    raise ValueError(f"record {i}: {expect}")
                corrupt(i, expect)
            kid = index.get((t, pv))
            if kid is None:
                kid = self.key_id(t, pv)
            get = r.get
            cost = _num(get("cost_usd"))
            tin, tout = _num(get("input_tokens")), _num(get("output_tokens"))
            sum_kids.append(kid)
            if code == -1:  # a duplicate: paid for, changes no state
                sums.append((cost, tin, tout, 0.0, 1.0))
                continue
            hit = 1.0 if code == DONE and get("cache_hit") is True else 0.0
            sums.append((cost, tin, tout, hit, 0.0))
            kids.append(kid)
            frames.append(f)
            codes.append(code)
            rids.append(0 if code == DONE else self.reason_id(get("reason")))
        if sum_kids:
            self.add_sums(np.asarray(sum_kids, np.int64), np.asarray(sums, np.float64))
        if kids:
            self.apply(
                np.asarray(kids, np.int64),
                np.asarray(frames, np.int64),
                np.asarray(codes, np.uint8),
                np.asarray(rids, np.int32),
            )

    # -- questions --------------------------------------------------------------------
    def counts(self, kid: int) -> np.ndarray:
        return np.bincount(self.state[kid], minlength=4)[:4]

    def combined(self, versions: set[str] | None) -> np.ndarray:
        """Per frame, the best state any target reached (done > skipped > failed > pending),
        over keys of these prompt versions (None: all; "" always counts).

        In route mode a frame is one task whichever target answered it.
        """
        arrays = [
            self.state[k]
            for k, (_, pv) in enumerate(self.keys)
            if versions is None or pv in versions or pv == ""
        ]
        out = np.zeros(max((a.size for a in arrays), default=0), np.uint8)
        for a in arrays:
            np.maximum(out[: a.size], a, out=out[: a.size])
        return out

    def reason_counts(self, code: int) -> dict[str, int]:
        total = np.zeros(len(self.reasons), np.int64)
        for state, reason in zip(self.state, self.reason, strict=True):
            hit = reason[state == code]
            if hit.size:
                total += np.bincount(hit, minlength=len(self.reasons))
        order = np.argsort(-total, kind="stable")
        return {self.reasons[i]: int(total[i]) for i in order.tolist() if total[i]}

    def copy(self) -> Table:
        t = Table()
        t.keys, t.index = list(self.keys), dict(self.index)
        t.state = [a.copy() for a in self.state]
        t.reason = [a.copy() for a in self.reason]
        t.reasons, t.reason_index = list(self.reasons), dict(self.reason_index)
        t.sums = self.sums.copy()
        return t

    # -- snapshot ---------------------------------------------------------------------
    def save(self, path: Path, header: dict[str, Any]) -> None:
        """Write a snapshot for `read_status` (tmp + rename; a cache, so no fsync)."""
        head = dict(header, keys=self.keys, reasons=self.reasons)
        arrays: dict[str, np.ndarray] = {
            "header": np.frombuffer(orjson.dumps(head), np.uint8),
            "sums": self.sums,
        }
        for kid, (state, reason) in enumerate(zip(self.state, self.reason, strict=True)):
            arrays[f"state{kid}"] = state
            where = np.flatnonzero((state == FAILED) | (state == SKIPPED))
            arrays[f"rwhere{kid}"] = where
            arrays[f"rid{kid}"] = reason[where]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> tuple[Table, dict[str, Any]] | None:
        """A snapshot, or None when it is missing or unreadable (then scan from scratch)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                head = orjson.loads(z["header"].tobytes())
                t = cls()
                t.keys = [tuple(k) for k in head["keys"]]
                t.index = {k: i for i, k in enumerate(t.keys)}
                t.reasons = list(head["reasons"])
                t.reason_index = {r: i for i, r in enumerate(t.reasons)}
                t.sums = z["sums"].astype(np.float64).reshape(len(t.keys), 5)
                for kid in range(len(t.keys)):
                    state = z[f"state{kid}"].astype(np.uint8)
                    reason = np.zeros(state.size, np.int32)
                    reason[z[f"rwhere{kid}"]] = z[f"rid{kid}"]
                    t.state.append(state)
                    t.reason.append(reason)
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        return t, head
