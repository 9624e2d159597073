"""Requests/s the provider simulator serves on one core, next to a bare aiohttp handler.

Run: python benchmarks/bench_sim.py [--seconds 4] [--rounds 3] [--client auto|wrk|aiohttp]

The simulator runs in a subprocess pinned to core 0 with rate limits on (huge, so nothing
trips but every request is metered and gets its headers) and zero latency. The load comes
from wrk pinned to core 1 when it is installed (`apt-get install -y wrk`), else from an
aiohttp client process pinned there. Every request POSTs the same ~60 KB OpenAI-style body
(a real JPEG frame, base64 in a data URL); the image is inspected and described once and
then served from the simulator's cache, as repeated frames would be.

The baseline, measured in the same run on the same core, is an aiohttp app whose handler
reads the body and returns a fixed 200: the ceiling of the HTTP stack itself. Rounds
alternate baseline and simulator and the best of each is kept, because the machine is
shared. The target is 5,000 requests/s.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RPS = 5000.0
SERVER_CORE, CLIENT_CORE = 0, 1

SIM_SERVER = """
import asyncio, os, sys
os.sched_setaffinity(0, {{{core}}})
sys.path.insert(0, {root!r})
from evtui.sim import Scenario, SimServer
scenario = Scenario.model_validate(
    {{"providers": {{"openai": {{"rpm": 10**9, "tpm": 10**12}}}}}}
)
async def main():
    async with SimServer(scenario, port={port}):
        print("ready", flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""

BASELINE_SERVER = """
import asyncio, os
os.sched_setaffinity(0, {{{core}}})
from aiohttp import web
BODY = b'{{"id":"chatcmpl-0","object":"chat.completion","choices":[]}}'
async def handle(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
async def main():
    app = web.Application(client_max_size=1 << 27)
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", {port}, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

AIOHTTP_CLIENT = """
import asyncio, os, sys, time
os.sched_setaffinity(0, {{{core}}})
import aiohttp
URL, BODY = {url!r}, open({body!r}, "rb").read()
HEADERS = {{"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}}
async def worker(session, stop, counts):
    while time.perf_counter() < stop:
        async with session.post(URL, data=BODY, headers=HEADERS) as r:
            await r.read()
            counts[r.status == 200] += 1
async def main():
    counts = [0, 0]
    conn = aiohttp.TCPConnector(limit={connections})
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        stop = t0 + {seconds}
        await asyncio.gather(*(worker(session, stop, counts) for _ in range({connections})))
        dt = time.perf_counter() - t0
    print(f"{{(counts[0] + counts[1]) / dt:.1f}} {{counts[0]}}")
asyncio.run(main())
"""

WRK_LUA = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
"""


def frame_jpeg() -> bytes:
    """A JPEG that looks like a rendered event frame (dots and an edge): 640x480, ~45 KB."""
    import cv2  # only the benchmark needs these
    import numpy as np

    rng = np.random.default_rng(0)
    img = np.full((480, 640, 3), (52, 37, 30), np.uint8)
    img[rng.integers(0, 480, 2500), rng.integers(0, 640, 2500)] = (255, 255, 255)
    cv2.circle(img, (320, 240), 90, (200, 126, 64), 3)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    return buf.tobytes()


def request_body(jpeg: bytes) -> bytes:
    import orjson

    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    return orjson.dumps(
        {
            "model": "gpt-4o",
            "max_completion_tokens": 300,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe what moves in this event frame."},
                        {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
                    ],
                }
            ],
        }
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"server did not start (got {line!r})")
    return proc


def load(
    url: str, body_path: str, seconds: float, connections: int, wrk: str | None
) -> tuple[float, int]:
    """(requests/s, non-200 answers) from wrk or the aiohttp client on the client core."""
    if wrk:
        lua = Path(body_path).with_suffix(".lua")
        lua.write_text(WRK_LUA.format(body=body_path))
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", "-s", str(lua), url],
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CORE}),
            check=True,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(r"Socket errors:.*", out)
        if errors:
            print(f"    wrk: {errors.group(0)}")
        return rps, int(bad.group(1)) if bad else 0
    code = AIOHTTP_CLIENT.format(
        core=CLIENT_CORE, url=url, body=body_path, seconds=seconds, connections=connections
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    rps, bad = out.split()
    return float(rps), int(bad)


def measure(template: str, body_path: str, args: argparse.Namespace) -> tuple[float, int]:
    port = free_port()
    proc = start(template.format(core=SERVER_CORE, root=str(ROOT), port=port))
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        load(url, body_path, 1, args.connections, args.wrk)  # warm-up: caches, page-ins
        return load(url, body_path, args.seconds, args.connections, args.wrk)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto")
    args = ap.parse_args()
    args.wrk = shutil.which("wrk") if args.client != "aiohttp" else None
    if args.client == "wrk" and not args.wrk:
        print("wrk is not installed (apt-get install -y wrk)")
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("needs two cores (server and client pinned apart)")
        return 2
    body = request_body(frame_jpeg())
    with tempfile.TemporaryDirectory() as tmp:
        body_path = os.path.join(tmp, "body.json")
        Path(body_path).write_bytes(body)
        tool = "wrk" if args.wrk else "an aiohttp client"
        print(f"body {len(body) / 1000:.1f} kB, load from {tool}, {args.connections} connections")
        best = {"baseline": 0.0, "simulator": 0.0}
        bad_total = 0
        t0 = time.perf_counter()
        for r in range(args.rounds):
            for name, template in (("baseline", BASELINE_SERVER), ("simulator", SIM_SERVER)):
                rps, bad = measure(template, body_path, args)
                print(
                    f"  round {r + 1} {name:<9} {rps:9,.0f} req/s"
                    + (f"  ({bad} non-200)" if bad else "")
                )
                best[name] = max(best[name], rps)
                if name == "simulator":
                    bad_total += bad
    sim, base = best["simulator"], best["baseline"]
    verdict = "PASS" if sim >= TARGET_RPS and bad_total == 0 else "FAIL"
    if bad_total:
        verdict += f" ({bad_total} non-200 answers)"
    print(
        textwrap.dedent(f"""\
        baseline (bare aiohttp, fixed 200)  {base:9,.0f} req/s
        simulator (limits on, 0 latency)    {sim:9,.0f} req/s   = {sim / base:.2f} x baseline
        target {TARGET_RPS:,.0f} req/s: {verdict}
        ({time.perf_counter() - t0:.0f} s)""")
    )
    return 0 if verdict.startswith("PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
