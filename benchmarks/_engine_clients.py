"""Client processes of bench_engine: a bare aiohttp loop, evtui's Engine, LiteLLM's Router.

Run by bench_engine.py as `python _engine_clients.py '<json spec>'`, pinned to the client
core; prints one JSON line with what it measured. Each kind runs in its own process so
its CPU time and peak memory are its own. Frames come pre-encoded from a pickle the parent
wrote (JPEG bytes and their base64, as the encoder workers hand them over).

All three send the same requests: OpenAI chat completions with one text part and one
image data URL, to three targets (two OpenAI models on the simulator's /v1 endpoint, one
model on its OpenAI-compatible /compat endpoint) in the same 2:1:1 smooth weighted order.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from _common import proc_cpu_s as _proc_cpu_s

PROMPT = "Describe this event-camera frame in one sentence."
MAX_OUT = 300
KEY = "bench-key"  # the simulator accepts any key when none are configured
# (target id, provider, model, weight, fallbacks): the routing every client follows.
TARGETS = (
    ("openai/gpt-4o", "openai", "gpt-4o", 2.0, ("openai/gpt-4o-mini", "local/llava-v1.6")),
    ("openai/gpt-4o-mini", "openai", "gpt-4o-mini", 1.0, ("local/llava-v1.6",)),
    ("local/llava-v1.6", "local", "llava-v1.6", 1.0, ()),
)


def weighted_order(weights: list[float], n: int) -> list[int]:
    """Smooth weighted round robin (the engine's first pick): n picks in exact shares."""
    cur = [0.0] * len(weights)
    total = sum(weights)
    out = []
    for _ in range(n):
        for i, w in enumerate(weights):
            cur[i] += w
        best = max(range(len(weights)), key=cur.__getitem__)
        cur[best] -= total
        out.append(best)
    return out


def proc_cpu_s(pid: int) -> float:
    """utime + stime of another process (the simulator); nan once it is gone."""
    return _proc_cpu_s(pid, float("nan"))


def cpu_wait_s(pid: int | str = "self") -> float:
    """Seconds a process's main thread spent runnable but waiting for a CPU (schedstat):
    how much other work on the machine held this benchmark back."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def mem_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def warm_count(n: int) -> int:
    """Requests sent before measuring: enough to open every connection and warm caches."""
    return min(max(n // 4, 300), 1000)


def load_frames(path: str) -> list[tuple[bytes, str]]:
    with open(path, "rb") as f:
        return pickle.load(f)


PROFILER: Any = None  # a cProfile.Profile when the parent asked for one


class Meter:
    """Wall and CPU time of this process (all threads), and the simulator's CPU time.

    Only the measured section is profiled when a profile was asked for."""

    def __init__(self, sim_pid: int) -> None:
        self.sim_pid = sim_pid

    def __enter__(self) -> Meter:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        self.s0 = proc_cpu_s(self.sim_pid)
        self.q0, self.sq0 = cpu_wait_s(), cpu_wait_s(self.sim_pid)
        if PROFILER is not None:
            PROFILER.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if PROFILER is not None:
            PROFILER.disable()
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        self.sim_cpu = proc_cpu_s(self.sim_pid) - self.s0
        self.wait = cpu_wait_s() - self.q0
        self.sim_wait = cpu_wait_s(self.sim_pid) - self.sq0

    def result(self, n: int, ok: int, **extra: Any) -> dict[str, Any]:
        return {
            "n": n,
            "ok": ok,
            "wall_s": self.wall,
            "rps": n / self.wall,
            "cpu_us": self.cpu / n * 1e6,
            "sim_busy": self.sim_cpu / self.wall,
            "client_wait": self.wait / self.wall,
            "sim_wait": self.sim_wait / self.wall,
            **extra,
        }


# ---------------------------------------------------------------------------------------
# bare aiohttp


def bare_body(model: str, b64: str, max_field: str) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": PROMPT},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpeg;base64,{b64}"},
                        },
                    ],
                }
            ],
            max_field: MAX_OUT,
        }
    )


class Watch:
    """Samples every 0.1 s: (t, in flight, caps, own CPU s, simulator CPU s, own and the
    simulator's waits for a CPU), and answers."""

    def __init__(self, sim_pid: int, in_flight: Callable[[], int], caps: Callable[[], int]):
        self.sim_pid = sim_pid
        self.in_flight = in_flight
        self.caps = caps
        self.samples: list[tuple[float, ...]] = []
        self.marks: list[tuple[float, int]] = []  # filled by the caller or by `answered`
        self.answered: Callable[[], int] | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.perf_counter()
            self.samples.append(
                (
                    now,
                    self.in_flight(),
                    self.caps(),
                    time.process_time(),
                    proc_cpu_s(self.sim_pid),
                    cpu_wait_s(),
                    cpu_wait_s(self.sim_pid),
                )
            )
            if self.answered is not None:
                self.marks.append((now, self.answered()))

    def result(self, t0: float, marks: list[tuple[float, int]]) -> dict[str, Any]:
        return {
            "marks": [(t - t0, c) for t, c in marks],
            "samples": [(t - t0, *rest) for t, *rest in self.samples],
            "vm_hwm_kb": mem_kb("VmHWM"),
            "vm_rss_kb": mem_kb("VmRSS"),
        }


async def run_bare(spec: dict[str, Any], frames: list[tuple[bytes, str]], n: int) -> dict:
    """The floor: build the body with orjson, POST, read, parse the caption out."""
    import aiohttp
    import orjson

    root, conc = spec["root"], spec["concurrency"]
    routes = [
        (f"{root}/v1/chat/completions", "gpt-4o", "max_completion_tokens"),
        (f"{root}/v1/chat/completions", "gpt-4o-mini", "max_completion_tokens"),
        (f"{root}/compat/v1/chat/completions", "llava-v1.6", "max_tokens"),
    ]
    order = weighted_order([t[3] for t in TARGETS], 4)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)
    ok = flying = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            nonlocal ok, flying
            url, model, field = routes[order[i & 3]]
            body = bare_body(model, frames[i % len(frames)][1], field)
            flying += 1
            async with session.post(url, data=body, headers=headers) as r:
                payload = await r.read()
            flying -= 1
            if r.status == 200 and orjson.loads(payload)["choices"][0]["message"]["content"]:
                ok += 1

        async def pass_(total: int) -> None:
            it = iter(range(total))

            async def worker() -> None:
                for i in it:
                    await one(i)

            await asyncio.gather(*(worker() for _ in range(conc)))

        warm = spec.get("warm", warm_count(n))
        if warm:
            await pass_(warm)  # warm the connections
        ok = 0
        watch = Watch(spec["sim_pid"], lambda: flying, lambda: conc)
        watch.answered = lambda: ok
        watcher = asyncio.create_task(watch.run()) if spec.get("watch") else None
        t0 = time.perf_counter()
        with Meter(spec["sim_pid"]) as m:
            await pass_(n)
        if watcher is not None:
            watcher.cancel()
            watch.marks.append((time.perf_counter(), ok))
    extra = watch.result(t0, watch.marks) if watcher is not None else {}
    return m.result(n, ok, **extra)


# ---------------------------------------------------------------------------------------
# evtui's engine


def engine_yaml(max_in_flight: int, initial: int | None) -> str:
    lines = [
        "mode: route",
        "providers:",
        "  openai:",
        "    protocol: openai",
        "    base_url: ${BENCH_SIM_ROOT}",
        "    keys:",
        "      - key: ${BENCH_KEY}",
        "  local:",
        "    protocol: openai-compatible",
        "    base_url: ${BENCH_SIM_ROOT}/compat",
        "    keys:",
        "      - key: ${BENCH_KEY}",
        "targets:",
    ]
    for tid, _, _, weight, fallbacks in TARGETS:
        lines.append(f"  - {{id: {tid}, weight: {weight:g}, fallbacks: [{', '.join(fallbacks)}]}}")
    lines += [
        "prompts:",
        "  default:",
        f"    text: {PROMPT}",
        f"max_output_tokens: {MAX_OUT}",
        "prices:",
        "  llava-v1.6: {input: 0.0, output: 0.0}",
        "cache:",
        "  enabled: false",
        "engine:",
        f"  max_in_flight: {max_in_flight}",
    ]
    if initial is not None:
        lines.append(f"  initial_concurrency: {initial}")
    return "\n".join(lines) + "\n"


class CountingSink:
    """A commit function that checks and counts what it is given, then drops it, as a job
    store does once results are on disk (so memory and GC reflect a real run, not a
    benchmark that hoards 20,000 results and route records)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.results = self.traces = self.attempts = self.dupes = self.out_of_range = 0
        self.states: dict[str, int] = {}
        self.targets: dict[str, int] = {}
        self.marks: list[tuple[float, int]] = []  # (when, results so far) per commit

    def __call__(self, results: list[dict[str, Any]], traces: list[dict[str, Any]]) -> None:
        states, targets, seen = self.states, self.targets, self.seen
        for r in results:
            states[r["state"]] = states.get(r["state"], 0) + 1
            tgt = str(r["target"])
            targets[tgt] = targets.get(tgt, 0) + 1
            i = r["frame"]
            if not 0 <= i < self.n:
                self.out_of_range += 1
            elif seen[i]:
                self.dupes += 1
            else:
                seen[i] = 1
        self.attempts += sum(len(t["attempts"]) for t in traces)
        self.results += len(results)
        self.traces += len(traces)
        self.marks.append((time.perf_counter(), self.results))

    def check(self) -> dict[str, Any]:
        """Every frame got exactly one result and one route record, all done."""
        n = self.n
        distinct = n - self.seen.count(0)
        return {
            "results": self.results,
            "traces": self.traces,
            "distinct_frames": distinct,
            "duplicates": self.dupes + self.out_of_range,
            "states": self.states,
            "targets": self.targets,
            "attempts": self.attempts,
            "complete": self.results == n
            and self.traces == n
            and distinct == n
            and self.states.get("done", 0) == n,
        }


class KeepingSink(CountingSink):
    """The engine's MemorySink (keeps everything), checked the same way (--memory-sink)."""

    def __init__(self, n: int) -> None:
        from evtui.engine.dispatcher import MemorySink

        super().__init__(n)
        self.sink = MemorySink()

    def __call__(self, results: list[dict[str, Any]], traces: list[dict[str, Any]]) -> None:
        self.sink(results, traces)
        super().__call__(results, traces)


def make_sink(spec: dict[str, Any], n: int) -> CountingSink:
    return KeepingSink(n) if spec.get("memory_sink") else CountingSink(n)


def frame_source(frames: list[tuple[bytes, str]], n: int) -> Iterator[Any]:
    from evtui.engine.records import FrameWork
    from evtui.providers.types import ImagePart

    parts = [ImagePart(data, "image/jpeg", 640, 480, b64) for data, b64 in frames]
    k = len(parts)
    for i in range(n):
        yield FrameWork(i, parts[i % k], t0_us=i * 33_000, t1_us=(i + 1) * 33_000, events=5_000)


def build_engine(
    spec: dict[str, Any], commit: Callable[..., None], max_in_flight: int, client: Any = None
) -> Any:
    from evtui.config import parse_config
    from evtui.engine.dispatcher import Engine

    env = {"BENCH_SIM_ROOT": spec["root"], "BENCH_KEY": KEY}
    cfg = parse_config(engine_yaml(max_in_flight, spec.get("initial")), "<bench_engine>", env=env)
    return Engine(cfg, commit=commit, client=client, seed=0)


async def run_engine(spec: dict[str, Any], frames: list[tuple[bytes, str]], n: int) -> dict:
    """Engine in route mode: routing, pacing, records on; no cache.

    The warm-up run and the measured one share a client (the engine's default pool
    settings), so both this and the bare loop are measured on warm connections.
    """
    from evtui.providers.client import ProviderClient

    client = ProviderClient(limit=0, limit_per_host=0)
    w = warm_count(n)
    warm = build_engine(spec, CountingSink(w), spec["concurrency"], client)
    await warm.run(frame_source(frames, w), total=w)
    sink = make_sink(spec, n)
    eng = build_engine(spec, sink, spec["concurrency"], client)
    with Meter(spec["sim_pid"]) as m:
        res = await eng.run(frame_source(frames, n), total=n)
    await client.close()
    check = sink.check()
    return m.result(
        n,
        check["states"].get("done", 0),
        run={"state": res.state, "done": res.done, "failed": res.failed, "skipped": res.skipped},
        check=check,
    )


async def run_engine_latency(spec: dict[str, Any], frames: list[tuple[bytes, str]], n: int) -> dict:
    """Engine against a slow provider, from cold: answers over time, CPU, peak memory.

    Answers are counted when committed (what the engine acknowledges as done)."""
    sink = make_sink(spec, n)
    eng = build_engine(spec, sink, spec["concurrency"])
    watch = Watch(
        spec["sim_pid"],
        lambda: sum(t.in_flight for t in eng.targets),
        lambda: sum(t.conc.cap for t in eng.targets),
    )
    watcher = asyncio.create_task(watch.run())
    t0 = time.perf_counter()
    with Meter(spec["sim_pid"]) as m:
        res = await eng.run(frame_source(frames, n), total=n)
    watcher.cancel()
    check = sink.check()
    return m.result(
        n,
        check["states"].get("done", 0),
        run={"state": res.state, "done": res.done, "failed": res.failed, "skipped": res.skipped},
        check=check,
        **watch.result(t0, sink.marks),
    )


class CannedClient:
    """Stands in for ProviderClient without HTTP: every request gets a real answer captured
    from the simulator, parsed by the adapter as send_built would (headers, rate limits,
    body). What is left is the engine's own cost per request."""

    def __init__(self, answers: dict[str, tuple[int, Any, bytes]]) -> None:
        self.answers = answers

    async def send_built(self, adapter: Any, http: Any, model: str, key: str, timeout_s: float):
        status, headers, body = self.answers[http.url]
        await asyncio.sleep(0)  # an answer arrives on a later turn of the loop
        limits = adapter.rate_limits(headers, body)
        return adapter.parse_success(
            status, headers, body, key=key, model=model, rate_limits=limits, latency_s=0.0
        )

    async def close(self) -> None:
        return None


async def run_engine_nohttp(spec: dict[str, Any], frames: list[tuple[bytes, str]], n: int) -> dict:
    """The engine's own overhead: the same run with answers canned (see CannedClient)."""
    import aiohttp
    from multidict import CIMultiDict

    answers: dict[str, tuple[int, Any, bytes]] = {}
    root = spec["root"]
    async with aiohttp.ClientSession() as session:
        for url, model, field in (
            (f"{root}/v1/chat/completions", "gpt-4o", "max_completion_tokens"),
            (f"{root}/compat/v1/chat/completions", "llava-v1.6", "max_tokens"),
        ):
            body = bare_body(model, frames[0][1], field)
            hdrs = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
            async with session.post(url, data=body, headers=hdrs) as r:
                answers[url] = (r.status, CIMultiDict(r.headers), await r.read())
    client = CannedClient(answers)
    w = warm_count(n)
    warm = build_engine(spec, CountingSink(w), spec["concurrency"], client)
    await warm.run(frame_source(frames, w), total=w)
    sink = make_sink(spec, n)
    eng = build_engine(spec, sink, spec["concurrency"], client)
    with Meter(spec["sim_pid"]) as m:
        res = await eng.run(frame_source(frames, n), total=n)
    check = sink.check()
    return m.result(
        n,
        check["states"].get("done", 0),
        run={"state": res.state, "done": res.done, "failed": res.failed, "skipped": res.skipped},
        check=check,
    )


# ---------------------------------------------------------------------------------------
# LiteLLM's Router


async def run_litellm(spec: dict[str, Any], frames: list[tuple[bytes, str]], n: int) -> dict:
    """Router with one deployment per target, the same fallback chains, 2 retries.

    LiteLLM weights deployments only inside one model group, and falls back only between
    groups, so the weighted first pick is made here (the same 2:1:1 order as the others)
    and the Router does the rest: retries, fallbacks, cooldowns.
    """
    import logging

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
    try:
        import litellm
        from litellm import Router
    except ImportError as e:
        return {
            "error": f"LiteLLM is not installed ({e}): pip install litellm (the bench extra), "
            "or install it aside and set EVTUI_BENCH_LITELLM_SITE"
        }

    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    logging.getLogger("LiteLLM Router").setLevel(logging.ERROR)
    root, conc = spec["root"], spec["concurrency"]
    bases = {"openai": f"{root}/v1", "local": f"{root}/compat/v1"}
    model_list = [
        {
            "model_name": tid,
            "litellm_params": {"model": f"openai/{model}", "api_base": bases[prov], "api_key": KEY},
        }
        for tid, prov, model, _, _ in TARGETS
    ]
    router = Router(
        model_list=model_list,
        fallbacks=[{tid: list(fb)} for tid, _, _, _, fb in TARGETS if fb],
        num_retries=2,
        timeout=60,
    )
    order = weighted_order([t[3] for t in TARGETS], 4)
    names = [t[0] for t in TARGETS]
    ok = 0

    async def one(i: int) -> None:
        nonlocal ok
        b64 = frames[i % len(frames)][1]
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": PROMPT},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}},
                ],
            }
        ]
        resp = await router.acompletion(
            model=names[order[i & 3]], messages=messages, max_completion_tokens=MAX_OUT
        )
        if resp.choices[0].message.content:
            ok += 1

    async def pass_(total: int) -> None:
        it = iter(range(total))

        async def worker() -> None:
            for i in it:
                try:
                    await one(i)
                except Exception as e:  # counted as not ok; the first one is shown
                    errors.append(f"{type(e).__name__}: {str(e)[:200]}")

        await asyncio.gather(*(worker() for _ in range(conc)))

    errors: list[str] = []
    await pass_(min(n, 100))
    ok = 0
    errors.clear()
    with Meter(spec["sim_pid"]) as m:
        await pass_(n)
    return m.result(
        n,
        ok,
        errors=len(errors),
        first_error=errors[0] if errors else None,
        version=getattr(litellm, "__version__", None) or _dist_version("litellm"),
    )


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------

KINDS = {
    "bare": run_bare,
    "engine": run_engine,
    "engine_latency": run_engine_latency,
    "engine_nohttp": run_engine_nohttp,
    "litellm": run_litellm,
}


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("core") is not None:
        os.sched_setaffinity(0, {spec["core"]})
    global PROFILER
    if spec.get("profile"):
        import cProfile

        PROFILER = cProfile.Profile()
    frames = load_frames(spec["frames"])
    if spec.get("gc_threshold"):  # an experiment: how much the garbage collector costs
        import gc

        gc.set_threshold(*spec["gc_threshold"])
    out = asyncio.run(KINDS[spec["kind"]](spec, frames, spec["n"]))
    if PROFILER is not None:
        PROFILER.dump_stats(spec["profile"])
    out["kind"] = spec["kind"]
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
