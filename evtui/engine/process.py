"""The engine in its own process, for the app: the UI's thread never waits on the GIL.

Under the app the engine on a thread holds the GIL most of the time and its garbage
collections stop every thread: the UI's loop lagged 40–80 ms at p99 with the engine
flat out. Here a child process opens the job (and so holds the run's lock and is its only
writer) and runs the engine; the parent gets the same snapshot and events (pickled ~10
times a second), sends the same commands, reads results, traces and reviews from the
run directory without the lock, and renders previews itself from the recording.

`RemoteJob.open(config_path, recording, run_dir, ...)` has the surface the app uses
from `Job`: cfg, n_frames, plan, recording.path, engine.slots, store (results, reviews,
add_review, trace, run_dir), start_thread() → a source with snapshot/events/commands,
rerun(), close().
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evtui.config import Config, load_config
from evtui.engine.records import ROUTE_SLOT
from evtui.engine.telemetry import EMPTY_SNAPSHOT, Event, EventQueue, Snapshot
from evtui.jobs.layout import TRACE, read_reviews
from evtui.jobs.lines import complete_size, grep_frame
from evtui.jobs.records import final_records

TICK_S = 0.1


class RemoteJobError(Exception):
    """The child could not open the job: the message is what the user should read."""


# -- the child --------------------------------------------------------------------------


def _child(conn: Any, config_path: str, recording: str, run_dir: str, kw: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the app decides when to stop
    from evtui.config import ConfigError
    from evtui.engine.job import Job
    from evtui.events.errors import RecordingError
    from evtui.jobs import JobError

    try:
        cfg = load_config(config_path)
        if cfg.ui.engine_nice:  # before any worker starts: they inherit it
            with contextlib.suppress(OSError):
                os.nice(cfg.ui.engine_nice)
        job = Job.open(cfg, recording, run_dir, **kw)
    except ConfigError as e:
        conn.send(("error", e.report()))
        return
    except (RecordingError, JobError, OSError) as e:
        conn.send(("error", f"evtui: {e}"))
        return
    try:
        conn.send(("opened", {"n_frames": job.n_frames, "plan": job.plan, "run_dir": str(run_dir)}))
        th = job.start_thread()
        while th.alive:
            while conn.poll(TICK_S if th.alive else 0):
                cmd, args = conn.recv()
                if cmd == "review":
                    try:
                        job.store.add_review(args)
                        conn.send(("reviewed", None))
                    except Exception as e:  # the parent raises it for the caller
                        conn.send(("reviewed", f"{type(e).__name__}: {e}"))
                elif cmd == "rerun":
                    job.rerun(*args)
                else:
                    getattr(th, cmd)(*args)
            conn.send(("tick", (th.snapshot, th.events.drain())))
        th.join(60)
        conn.send(("tick", (th.snapshot, th.events.drain())))
        conn.send(("end", (th.result, repr(th.error) if th.error else None)))
    except (BrokenPipeError, EOFError):
        pass  # the parent went away: stop as a kill would
    finally:
        job.close()


# -- the parent -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recording:
    path: Path


class RemoteEngineError(Exception):
    pass


class RemoteSource:
    """What the app reads and commands, fed by the child's messages on a reader thread."""

    def __init__(self, remote: RemoteJob) -> None:
        self._remote = remote
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.events = EventQueue()
        self.result: Any = None
        self.error: BaseException | None = None

    @property
    def alive(self) -> bool:
        return self._remote._reader.is_alive()

    def _send(self, cmd: str, *args: Any) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._remote._send(cmd, args)

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def drain(self) -> None:
        self._send("drain")

    def stop(self) -> None:
        self._send("stop")

    def set_weight(self, target: str, weight: float) -> None:
        self._send("set_weight", target, weight)

    def resume_target(self, target: str) -> None:
        self._send("resume_target", target)

    def join(self, timeout: float | None = None) -> Any:
        self._remote._reader.join(timeout)
        self._remote._proc.join(timeout)
        return self.result


class RemoteStore:
    """The run directory read without its lock; reviews go through the child (the writer)."""

    def __init__(self, remote: RemoteJob, run_dir: Path) -> None:
        self._remote = remote
        self.run_dir = run_dir

    def results(self, frame: int | None = None) -> Any:
        return final_records(self.run_dir, frame=frame)

    def reviews(self) -> list[dict[str, Any]]:
        return read_reviews(self.run_dir)

    def trace(self, frame: int) -> list[dict[str, Any]]:
        path = self.run_dir / TRACE
        return list(grep_frame(path, frame, complete_size(path))) if path.exists() else []

    def add_review(self, record: dict[str, Any]) -> None:
        """Durable when it returns: the child appended and fsynced it."""
        self._remote._review(record)


class _Engine:
    def __init__(self, slots: tuple[str, ...]) -> None:
        self.slots = slots


class RemoteJob:
    """A job whose engine runs in a child process; see the module docstring."""

    def __init__(self, cfg: Config, recording: str, proc: Any, conn: Any, info: dict) -> None:
        self.cfg = cfg
        self.recording = _Recording(Path(recording))
        self.n_frames: int = info["n_frames"]
        self.plan = info["plan"]
        self.engine = _Engine(
            (ROUTE_SLOT,) if cfg.mode == "route" else tuple(t.id for t in cfg.targets)
        )
        self.store = RemoteStore(self, Path(info["run_dir"]))
        self.warnings: list[str] = []
        self._proc = proc
        self._conn = conn
        self._lock = threading.Lock()
        self._reviewed = threading.Condition()
        self._review_reply: list[str | None] = []
        self.source = RemoteSource(self)
        # Read from the start: a child blocked on a full pipe would stop serving commands.
        self._reader = threading.Thread(target=self._read, name="evtui-remote", daemon=True)
        self._reader.start()

    @classmethod
    def open(
        cls, config_path: str | Path, recording: str | Path, run_dir: str | Path, **kw: Any
    ) -> RemoteJob:
        """Start the child and wait until it has opened the job (or says why it cannot)."""
        cfg = load_config(config_path)  # errors here are the caller's to show
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_child,
            args=(child, str(config_path), str(recording), str(run_dir), kw),
            name="evtui-engine",
            daemon=False,
        )
        proc.start()
        child.close()
        try:
            kind, payload = parent.recv()
        except EOFError:
            proc.join(10)
            raise RemoteJobError(f"the engine process exited ({proc.exitcode})") from None
        if kind == "error":
            proc.join(10)
            raise RemoteJobError(payload)
        return cls(cfg, str(recording), proc, parent, payload)

    def _send(self, cmd: str, args: Any) -> None:
        with self._lock:
            self._conn.send((cmd, args))

    def _read(self) -> None:
        src = self.source
        try:
            while True:
                kind, payload = self._conn.recv()
                if kind == "tick":
                    snap, events = payload
                    src.snapshot = snap
                    for e in events:
                        src.events.put(e)
                elif kind == "reviewed":
                    with self._reviewed:
                        self._review_reply.append(payload)
                        self._reviewed.notify_all()
                elif kind == "end":
                    src.result, err = payload
                    if err:
                        src.error = RemoteEngineError(err)
                    return
        except (EOFError, OSError):
            if src.result is None and src.error is None:
                src.error = RemoteEngineError("the engine process ended unexpectedly")
                src.events.put(Event("error", str(src.error), 0.0))
        finally:
            with self._reviewed:
                self._reviewed.notify_all()

    def _review(self, record: dict[str, Any]) -> None:
        with self._reviewed:
            before = len(self._review_reply)
            self._send("review", dict(record))
            ok = self._reviewed.wait_for(
                lambda: len(self._review_reply) > before or not self._reader.is_alive(), 30
            )
            if not ok or len(self._review_reply) <= before:
                raise RemoteEngineError("the review was not recorded: the engine did not answer")
            err = self._review_reply[before]
        if err:
            raise RemoteEngineError(f"the review was not recorded: {err}")

    def start_thread(self, **_: Any) -> RemoteSource:
        """The engine already runs in the child; this is the app's view of it."""
        return self.source

    def rerun(self, k: int, slots: Any = None) -> None:
        self._send("rerun", (k, list(slots) if slots else None))

    def close(self) -> None:
        """Stop the child if it still runs and wait for it (it closes the job itself)."""
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._send("stop", ())
            self._proc.join(30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)
        with contextlib.suppress(OSError):
            self._conn.close()
