"""The engine on its own thread and event loop, for clients that have their own (the TUI).

The client reads `snapshot` (an immutable object swapped ~10 times a second) and drains
`events`; commands cross over with `call_soon_threadsafe`, so the engine's state is only
ever touched by its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any

from evtui.engine.dispatcher import Engine, RunResult
from evtui.engine.records import FrameWork
from evtui.engine.telemetry import EventQueue, Snapshot


class EngineThread:
    """`EngineThread(engine, frames).start()`; then `snapshot`, `events`, commands, `join()`."""

    def __init__(
        self,
        engine: Engine,
        frames: Iterable[FrameWork] | AsyncIterable[FrameWork],
        *,
        total: int | None = None,
        slots_total: int | None = None,
        slots_for: Callable[[FrameWork], Sequence[str]] | None = None,
        keep_alive: bool = False,
        name: str = "evtui-engine",
    ) -> None:
        self.engine = engine
        self._frames = frames
        self._total = total
        self._slots_for = slots_for
        self._slots_total = slots_total
        self._keep_alive = keep_alive
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._ready.set()
        try:
            self.result = loop.run_until_complete(
                self.engine.run(
                    self._frames,
                    total=self._total,
                    slots_total=self._slots_total,
                    slots_for=self._slots_for,
                    keep_alive=self._keep_alive,
                )
            )
        except BaseException as e:  # reported to the client thread, never lost
            self.error = e
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def start(self) -> EngineThread:
        self._thread.start()
        self._ready.wait()
        return self

    def join(self, timeout: float | None = None) -> RunResult | None:
        self._thread.join(timeout)
        if self.error is not None and not self._thread.is_alive():
            raise self.error
        return self.result

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def snapshot(self) -> Snapshot:
        return self.engine.snapshot

    @property
    def events(self) -> EventQueue:
        return self.engine.events

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(fn, *args)

    def pause(self) -> None:
        self._call(self.engine.pause)

    def resume(self) -> None:
        self._call(self.engine.resume)

    def drain(self) -> None:
        self._call(self.engine.drain)

    def stop(self) -> None:
        self._call(self.engine.stop)

    def set_weight(self, target: str, weight: float) -> None:
        self._call(self.engine.set_weight, target, weight)

    def resume_target(self, target: str) -> None:
        self._call(self.engine.resume_target, target)

    def submit(self, fw: FrameWork, slots: Sequence[str] | None = None) -> None:
        self._call(self.engine.submit, fw, slots)
