"""The simulator on its own thread and event loop, for a process that needs its loop free:
`evtui demo` (the engine runs beside it) and tests that run evtui as a subprocess."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from evtui.sim.scenario import Scenario
from evtui.sim.server import SimServer


class SimThread:
    """`with SimThread(scenario) as sim: sim.base_url("openai")`; stopped on exit."""

    def __init__(self, scenario: Scenario | None = None, **server_kw: Any) -> None:
        self.scenario = scenario
        self._kw = server_kw
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.server: SimServer | None = None
        self._thread = threading.Thread(target=self._main, name="evtui-sim", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by start()
            self._error = e
            self._started.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with SimServer(self.scenario, **self._kw) as sim:
            self.server = sim
            self._started.set()
            await self._stop.wait()

    def start(self, timeout: float = 30.0) -> SimServer:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("the simulator did not start")
        if self._error is not None or self.server is None:
            raise RuntimeError(f"the simulator did not start: {self._error}")
        return self.server

    def stop(self) -> None:
        stop = self._stop
        if stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
