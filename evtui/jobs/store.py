"""A job is a directory: open it, ask what is left, commit results durably, resume after anything.

A result counts as done once `commit` has returned: its line is written and fsynced.
Nothing is ever rewritten in place; only a torn last line (a write killed midway, never
acknowledged) is cut off when the run is next opened. The files are listed in layout.py.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from evtui.jobs import lines
from evtui.jobs import manifest as manifests
from evtui.jobs.errors import JobError, JobMismatch, JobWriteError
from evtui.jobs.layout import (
    CAPTIONS,
    FORMAT,
    HISTORY,
    LEDGER,
    MANIFEST,
    REVIEWS,
    SNAPSHOT,
    TRACE,
    fsync_dir,
    history_total,
    ingest_file,
    nonempty,
    read_manifest,
    read_reviews,
    write_atomic,
)
from evtui.jobs.lock import RunLock
from evtui.jobs.state import (
    DONE,
    FAILED,
    MAX_FRAME,
    SKIPPED,
    STATE_NAMES,
    Table,
    record_key,
)
from evtui.jobs.status import summarise

SNAPSHOT_EVERY_S = 2.0
DECISIONS = frozenset({"accept", "reject", "edit", "prefer"})
RESULT_STATES = {"done": DONE, "failed": FAILED, "skipped": SKIPPED}

OnMismatch = Literal["refuse", "new", "force"]
Key = tuple[int, str, str]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Completed(Mapping[Key, str]):
    """(frame, target, prompt_version) -> "done" | "skipped" | "failed" for every terminal key.

    A frozen copy backed by numpy arrays (5 bytes a key, not ~200): iterate it, test
    membership, or ask `pending(target, prompt_version, n_frames)` for a vector at once.
    """

    def __init__(self, table: Table, terminal: tuple[int, ...]) -> None:
        self._table = table
        self._terminal = np.asarray(terminal, np.uint8)

    def _mask(self, kid: int) -> np.ndarray:
        return np.isin(self._table.state[kid], self._terminal)

    def __getitem__(self, key: Key) -> str:
        frame, target, pv = key
        kid = self._table.index.get((target, pv))
        if kid is None or not 0 <= frame < self._table.state[kid].size:
            raise KeyError(key)
        code = int(self._table.state[kid][frame])
        if code not in self._terminal:
            raise KeyError(key)
        return STATE_NAMES[code]

    def __iter__(self) -> Iterator[Key]:
        for kid, (target, pv) in enumerate(self._table.keys):
            for f in np.flatnonzero(self._mask(kid)).tolist():
                yield (f, target, pv)

    def __len__(self) -> int:
        return sum(int(self._mask(kid).sum()) for kid in range(len(self._table.keys)))

    def frames(self, target: str, prompt_version: str) -> np.ndarray:
        """Terminal frame indices of one (target, prompt version), ascending."""
        kid = self._table.index.get((target, prompt_version))
        return np.zeros(0, np.int64) if kid is None else np.flatnonzero(self._mask(kid))

    def pending(self, target: str | None, prompt_version: str | None, n_frames: int) -> np.ndarray:
        """Frame indices in [0, n_frames) still to dispatch for one (target, prompt version);
        target None: frames no target has finished (route mode; prompt_version None: any)."""
        return _pending(self._table, target, prompt_version, n_frames, self._terminal)


class JobStore:
    """The one writer of a run directory. Open with `JobStore.open`; close (or exit) when done.

    Thread safety: every method may be called from any thread. Writes (`commit`,
    `add_review`, `set_total`) are serialised; `status`, `completed` and `pending` only
    take a short lock and never wait for an fsync in progress.
    """

    def __init__(
        self,
        run_dir: Path,
        lock: RunLock,
        envelope: dict[str, Any],
        opened: str,
        differences: list[manifests.Difference],
        repairs: list[str],
        retry_failed: bool,
    ) -> None:
        self.run_dir = run_dir
        self.opened = opened
        self.differences = tuple(differences)
        self.repairs = tuple(repairs)
        self.retry_failed = retry_failed
        self._lock = lock
        self._envelope = envelope
        self._io = threading.Lock()
        self._state = threading.Lock()
        self._table = Table()
        self._lines = {CAPTIONS: 0, LEDGER: 0}
        self._broken: str | None = None
        self._last_snapshot = 0.0
        total = self.manifest.get("total")
        self.total: int | None = total if type(total) is int else None
        self._files: dict[str, lines.Appender] = {}

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        run_dir: str | os.PathLike[str],
        manifest: dict[str, Any],
        *,
        on_mismatch: OnMismatch = "refuse",
        retry_failed: bool = False,
    ) -> JobStore:
        """Create `run_dir` or resume it, holding its lock until `close`.

        On resume the stored manifest is compared with `manifest`: differences that would
        change results raise `JobMismatch` naming each, unless `on_mismatch` is "force"
        (continue in this directory; the new manifest and the forced differences are
        recorded in history.jsonl) or "new" (leave this directory untouched and use the
        first sibling `<name>-2`, `<name>-3`, ... whose manifest matches, else create the
        next free one, so running the same command again resumes the same sibling).
        Harmless differences (budget, retries, weights, keys, timeouts, cache, prices)
        are accepted and recorded. `retry_failed` makes failed keys pending again.
        """
        if on_mismatch not in ("refuse", "new", "force"):
            raise ValueError(f"on_mismatch must be 'refuse', 'new' or 'force', not {on_mismatch!r}")
        try:
            orjson.dumps(manifest)
        except TypeError as e:
            raise ValueError(f"manifest is not JSON-serialisable: {e}") from None
        path = Path(run_dir)
        if on_mismatch == "new":
            path = _matching_sibling(path, manifest)
        store = cls._open_one(path, manifest, on_mismatch == "force", retry_failed)
        if path != Path(run_dir) and store.opened == "created":
            store.opened = "new"
        return store

    @classmethod
    def _open_one(
        cls, run_dir: Path, manifest: dict[str, Any], force: bool, retry_failed: bool
    ) -> JobStore:
        try:
            fresh = not run_dir.exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            if fresh:
                fsync_dir(run_dir.parent)  # the new directory's own entry survives a power cut
        except OSError as e:
            raise JobWriteError(run_dir, e, "could not create the run directory") from e
        lock = RunLock(run_dir)
        lock.acquire()
        try:
            return cls._open_locked(run_dir, lock, manifest, force, retry_failed)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(
        cls, run_dir: Path, lock: RunLock, manifest: dict[str, Any], force: bool, retry: bool
    ) -> JobStore:
        stored = read_manifest(run_dir)
        differences: list[manifests.Difference] = []
        now = _now()
        if stored is None:
            leftovers = [n for n in (CAPTIONS, LEDGER) if nonempty(run_dir / n)]
            if leftovers:
                raise JobError(
                    f"{run_dir} holds {', '.join(leftovers)} but no {MANIFEST}: not a run this"
                    " version can resume; move it aside or choose another --run-dir"
                )
            envelope = {
                "format": FORMAT,
                "run_id": uuid.uuid4().hex,
                "created_at": now,
                "updated_at": now,
                "manifest": manifest,
            }
            write_atomic(run_dir / MANIFEST, orjson.dumps(envelope, option=orjson.OPT_INDENT_2))
            opened = "created"
        else:
            differences = manifests.diff(stored["manifest"], manifest)
            bad = manifests.harmful(differences)
            if bad and not force:
                raise JobMismatch(run_dir, bad)
            opened = "forced" if bad else ("accepted" if differences else "resumed")
            envelope = dict(stored, manifest=manifest, updated_at=now) if differences else stored
        store = cls(run_dir, lock, envelope, opened, differences, [], retry)
        store._load()  # a corrupt run raises here, before its manifest is touched
        if differences:
            write_atomic(run_dir / MANIFEST, orjson.dumps(envelope, option=orjson.OPT_INDENT_2))
        event: dict[str, Any] = {"at": now, "event": opened, "pid": os.getpid()}
        if differences:
            event["differences"] = [str(d) for d in differences]
            event["previous"] = stored["manifest"] if stored else None
        if store.repairs:
            event["repairs"] = list(store.repairs)
        store._append_sync(HISTORY, lines.dump(event))
        return store

    def _load(self) -> None:
        """Cut torn tails, open the files for appending and rebuild the state from them."""
        repairs: list[str] = []
        for name in (CAPTIONS, LEDGER, TRACE, REVIEWS, HISTORY):
            path = self.run_dir / name
            if path.exists():
                cut = lines.repair_tail(path)
                if cut:
                    repairs.append(f"{name}: cut a torn last line ({cut} bytes, never committed)")
        self.repairs = tuple(repairs)
        for name in (CAPTIONS, LEDGER, TRACE, REVIEWS, HISTORY):
            self._files[name] = lines.Appender(self.run_dir / name)
        fsync_dir(self.run_dir)
        for name, done in ((LEDGER, False), (CAPTIONS, True)):
            self._lines[name] = ingest_file(
                self._table, self.run_dir / name, done, 0, self._files[name].size, 1
            )
        if self.total is None:
            self.total = history_total(self.run_dir)
        self._snapshot()

    # -- the manifest ------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return self._envelope["manifest"]

    @property
    def run_id(self) -> str:
        return self._envelope["run_id"]

    # -- what is left ----------------------------------------------------------------
    def _terminal(self) -> tuple[int, ...]:
        return (DONE, SKIPPED) if self.retry_failed else (DONE, SKIPPED, FAILED)

    def completed(self) -> Completed:
        """Every terminal key (done, skipped, and failed unless `retry_failed`): a frozen copy."""
        with self._state:
            table = self._table.copy()
        return Completed(table, self._terminal())

    def pending(self, target: str | None, prompt_version: str | None, n_frames: int) -> np.ndarray:
        """Frame indices in [0, n_frames) still to dispatch for one (target, prompt version).

        target None: frames no target has finished, for route mode where any target may
        answer (prompt_version None: whatever version answered).
        """
        terminal = np.asarray(self._terminal(), np.uint8)
        with self._state:
            return _pending(self._table, target, prompt_version, n_frames, terminal)

    def set_total(self, n: int) -> None:
        """The expected number of keys (frames x targets), so status can say what is pending."""
        if type(n) is not int or n < 0:
            raise ValueError(f"total must be an int >= 0, not {n!r}")
        with self._io:
            self._check_open()
            if n != self.total:
                event = {"at": _now(), "event": "total", "total": n}
                self._append_sync(HISTORY, lines.dump(event))
            self.total = n
            self._snapshot()

    # -- committing ------------------------------------------------------------------
    def commit(
        self, results: Sequence[dict[str, Any]], traces: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Append results and route records; returns once they are on disk (one fsync a file).

        done results go to captions.jsonl, failed and skipped ones to ledger.jsonl; a done
        result for a key already done is kept in the ledger as "duplicate" (it was paid
        for) so captions.jsonl never holds two for one key. On any OSError every file is
        cut back to its size before the call and JobWriteError is raised: a later resume
        sees exactly the batches that returned. Extra fields are kept as given.
        """
        if not results and not traces:
            return
        with self._io:
            self._check_open()
            caps, ledger = self._route(results)
            tr = [_checked_trace(t, i) for i, t in enumerate(traces)]
            batches = [
                (TRACE, b"".join(map(lines.dump, tr))),
                (LEDGER, b"".join(map(lines.dump, ledger))),
                (CAPTIONS, b"".join(map(lines.dump, caps))),
            ]
            self._write_batches(batches)
            with self._state:
                self._table.ingest(ledger, done_file=False)
                self._table.ingest(caps, done_file=True)
                self._lines[LEDGER] += len(ledger)
                self._lines[CAPTIONS] += len(caps)
            if time.monotonic() - self._last_snapshot >= SNAPSHOT_EVERY_S:
                self._snapshot()

    def _check_open(self) -> None:
        if self._lock.fd < 0:
            raise JobError(f"{self.run_dir}: the job store is closed")
        if self._broken:
            raise JobError(self._broken)

    def _route(
        self, results: Sequence[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        caps: list[dict[str, Any]] = []
        ledger: list[dict[str, Any]] = []
        seen: dict[tuple[str, str, int], int] = {}
        table = self._table
        per_frame = self.manifest.get("mode") == "route"  # one task a frame, any target
        by_version: dict[str, list[int]] = {}
        for i, r in enumerate(results):
            r = _checked_result(r, i)
            f, target, pv, state = record_key(r)
            k = ("", pv, f) if per_frame else (target, pv, f)
            cur = seen.get(k)
            if cur is None:
                if per_frame:
                    kids = by_version.get(pv)
                    if kids is None:
                        kids = by_version[pv] = [
                            j for j, key in enumerate(table.keys) if key[1] in (pv, "")
                        ]
                else:
                    kids = [table.index.get((target, pv), -1)]
                cur = max((table.get(j, f) for j in kids if j >= 0), default=0)
            code = RESULT_STATES[state]
            if code == DONE and cur == DONE:
                ledger.append({**r, "state": "duplicate"})
                continue
            (caps if code == DONE else ledger).append(r)
            seen[k] = max(cur, code) if per_frame else (DONE if cur == DONE else code)
        return caps, ledger

    def _write_batches(self, batches: list[tuple[str, bytes]]) -> None:
        touched: list[tuple[lines.Appender, int]] = []
        current = self._files[batches[0][0]]
        try:
            for name, data in batches:
                if data:
                    current = self._files[name]
                    touched.append((current, current.size))
                    current.write(data)
            for current, _ in touched:
                current.sync()
        except OSError as e:
            note = self._rollback(touched)
            raise JobWriteError(current.path, e, note) from None
        for app, size in touched:
            app.size = size + _written(batches, app.path.name)

    def _rollback(self, touched: list[tuple[lines.Appender, int]]) -> str:
        failed = []
        for app, size in touched:
            try:
                app.rollback(size)
            except OSError as e:
                failed.append(f"{app.path.name}: {e.strerror}")
        if failed:
            self._broken = (
                f"{self.run_dir}: a failed write could not be rolled back ({'; '.join(failed)});"
                " reopen the run to repair it"
            )
            return f"could not roll back ({'; '.join(failed)}): reopen the run to repair it"
        return "this batch was not recorded; everything committed before is intact"

    def _append_sync(self, name: str, data: bytes) -> None:
        app = self._files[name]
        size = app.size
        try:
            app.write(data)
            app.sync()
        except OSError as e:
            note = self._rollback([(app, size)])
            raise JobWriteError(app.path, e, note) from None
        app.size = size + len(data)

    # -- reviews ---------------------------------------------------------------------
    def add_review(self, record: dict[str, Any]) -> None:
        """Record a review decision durably: {frame, target, decision, text?, at?}."""
        r = _checked_review(record)
        with self._io:
            self._check_open()
            self._append_sync(REVIEWS, lines.dump(r))

    def reviews(self) -> list[dict[str, Any]]:
        """Every review decision in the order made."""
        return read_reviews(self.run_dir, self._files[REVIEWS].size)

    # -- reading ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Progress, spend, per-target counts and error reasons (see `summarise`)."""
        with self._state:
            out = summarise(self._table, self.total, self.manifest, self.retry_failed)
        out.update(
            run_dir=str(self.run_dir),
            run_id=self.run_id,
            writer={"pid": os.getpid(), "live": True},
            repairs=list(self.repairs),
        )
        return out

    def results(
        self, frame: int | None = None, states: Sequence[str] = ("done", "failed", "skipped")
    ) -> Iterator[dict[str, Any]]:
        """Final result per key (done, else the last failed/skipped), by frame then target."""
        from evtui.jobs.records import final_records

        ends = {n: self._files[n].size for n in (CAPTIONS, LEDGER)}
        return final_records(self.run_dir, frame=frame, states=states, ends=ends)

    def trace(self, frame: int) -> list[dict[str, Any]]:
        """Route records of one frame, in the order they were committed."""
        return list(lines.grep_frame(self.run_dir / TRACE, frame, self._files[TRACE].size))

    # -- closing ---------------------------------------------------------------------
    def _snapshot(self) -> None:
        with self._state:
            table = self._table.copy()
            header = {
                "run_id": self.run_id,
                "total": self.total,
                "retry_failed": self.retry_failed,
                "offsets": {n: self._files[n].size for n in (CAPTIONS, LEDGER)},
                "lines": dict(self._lines),
                "written_at": _now(),
            }
        with contextlib.suppress(OSError):  # a cache: read_status can read the files instead
            table.save(self.run_dir / SNAPSHOT, header)
        self._last_snapshot = time.monotonic()

    def close(self) -> None:
        """Write a final status snapshot, close the files and release the lock."""
        with self._io:
            if self._lock.fd < 0:
                return
            if not self._broken:
                self._snapshot()
            for app in self._files.values():
                app.close()
            self._lock.release()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pending(
    table: Table, target: str | None, pv: str | None, n_frames: int, terminal: np.ndarray
) -> np.ndarray:
    state = np.zeros(n_frames, np.uint8)
    if target is None:
        arrays = [table.combined(None if pv is None else {pv})]
    else:  # a record without a version ("") counts for every version
        kids = (table.index.get((target, pv or "")), table.index.get((target, "")))
        arrays = [table.state[k] for k in kids if k is not None]
    for a in arrays:
        a = a[:n_frames]
        np.maximum(state[: a.size], a, out=state[: a.size])
    return np.flatnonzero(~np.isin(state, terminal))


# -- validation ---------------------------------------------------------------------------
def _checked_result(r: Any, i: int) -> dict[str, Any]:
    if not isinstance(r, dict):
        raise ValueError(f"result {i}: expected a dict, got {type(r).__name__}")
    if "frame" not in r or "state" not in r:
        missing = [k for k in ("frame", "state") if k not in r]
        raise ValueError(f"result {i}: missing {', '.join(missing)}")
    f, state = r["frame"], r["state"]
    if type(f) is not int or not 0 <= f < MAX_FRAME:
        r = dict(r, frame=_frame(f, f"result {i}"))
    if state not in RESULT_STATES:
        raise ValueError(f"result {i}: state must be done, failed or skipped, not {state!r}")
    t = r.get("target") or r.get("slot")
    if type(t) is not str:
        raise ValueError(f"result {i}: needs a target (or a slot) string, got {t!r}")
    pv = r.get("prompt_version")
    if pv is not None and type(pv) is not str:
        raise ValueError(f"result {i}: prompt_version must be a string or None, got {pv!r}")
    if state == "done" and not isinstance(r.get("caption"), str):
        raise ValueError(f"result {i}: a done result needs a caption string")
    return r


def _frame(f: Any, what: str) -> int:
    """A frame index from any integer type (numpy's included); never a bool or negative."""
    if isinstance(f, bool) or not isinstance(f, Integral) or not 0 <= f < MAX_FRAME:
        raise ValueError(f"{what}: frame must be an int in [0, 2**31), got {f!r}")
    return int(f)


def _checked_trace(t: Any, i: int) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise ValueError(f"trace {i}: expected a dict, got {type(t).__name__}")
    f = t.get("frame")
    return t if type(f) is int and 0 <= f < MAX_FRAME else dict(t, frame=_frame(f, f"trace {i}"))


def _checked_review(r: Any) -> dict[str, Any]:
    if not isinstance(r, dict):
        raise ValueError(f"review: expected a dict, got {type(r).__name__}")
    f = _frame(r.get("frame"), "review")
    if not isinstance(r.get("target"), str) or not r["target"]:
        raise ValueError("review: target must be a non-empty string")
    if r.get("decision") not in DECISIONS:
        raise ValueError(
            f"review: decision must be one of {sorted(DECISIONS)}, not {r.get('decision')!r}"
        )
    if r["decision"] == "edit" and not isinstance(r.get("text"), str):
        raise ValueError("review: an edit needs its text")
    return dict(r, frame=int(f), at=r.get("at") or _now())


# -- files ---------------------------------------------------------------------------------
def _written(batches: list[tuple[str, bytes]], name: str) -> int:
    return sum(len(d) for n, d in batches if n == name)


def _matching_sibling(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """`run_dir` or the first `<name>-N` beside it that is empty or matches; else the next free."""
    n = 1
    while True:
        cand = run_dir if n == 1 else run_dir.with_name(f"{run_dir.name}-{n}")
        if not cand.exists():
            return cand
        stored = read_manifest(cand)
        if stored is None or not manifests.harmful(manifests.diff(stored["manifest"], manifest)):
            return cand
        n += 1
