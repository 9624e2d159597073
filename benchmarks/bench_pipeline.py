"""The whole path, recording on disk → captions on disk, in frames/s on this machine.

    python benchmarks/bench_pipeline.py [--quick] [--rate MEV] [--size WxH] [--workers N]
                                        [--skip-breakdown] [--[no-]whatif] [--profile DIR]

What runs, all on this machine at once (2 cores here), nothing pinned:
* the simulator in its own process: OpenAI on /v1 and an OpenAI-compatible gateway on
  /compat/v1, rate limits on but huge (every answer is metered and carries its headers),
  fixed captions (`describer=False`: the default describer costs ~1 ms per distinct
  image, and every frame here is distinct; this measures evtui's path, not the
  simulator's captioner);
* `evtui run CONFIG RECORDING --no-ui` in a subprocess, as a user starts it: the job
  store (fsync per commit batch), worker processes that decode their window ranges from
  index checkpoints, render, encode, hash and base64, and the engine routing each frame
  to one of three targets (route mode, weights 2:1:1, fallback chains, pacing and route
  records on; the cache is off because the engine has none yet).

The recording is a moving camera at Prophesee Gen4 HD size (1280x720, ~2 Mev/s mean) from
`_pipeline_recording.py`, generated once and cached under evtui's cache directory. It is
EVT 2.0, the format that decodes fastest here (~90 Mev/s, against ~70 for DAT and ~24
for EVT 3.0). Windows are 33 ms with 90 % overlap (one every 3.3 ms). The targets are
gpt-4o and gpt-4o-mini at detail low (and gpt-4o again behind the gateway), so
`render_size` renders at 512x288, the size those models use; `--size 640x360` forces a
render size instead.

The headline is the sustained rate of the real run: frames committed to the job store
per second between 10 % and 90 % of the run, read from captions.jsonl as it grows; the
rate including process start-up is printed beside it, with the CPU each process used
per frame (the simulator's included), the rate that CPU cost would allow if the cores
were ours alone, and how much of the machine other work took meanwhile (it is shared).
Before it, to say where the time goes: each worker stage's CPU per frame (thread CPU,
best of 3 passes, the exact calls the workers make), the alternatives to the workers'
choices on the same windows, the pipeline alone into a null sink (process vs thread pool, 1 and
2 workers) and the engine alone fed pre-encoded frames (same config, same job store).
`--whatif` (default on, off with --quick) runs the job again with each range decoded in
one go instead of streamed (`_pipeline_fast.py`). Target: >= 800 frames/s sustained; the last
line reads `fps=<x> target=800`.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT

HERE = Path(__file__).resolve().parent
TARGET_FPS = 800.0
WINDOW, OVERLAP = "33ms", "90%"
MODES = {
    # recording seconds (>= 5,000 windows in quick), pipeline-alone windows per run,
    # engine-alone frames, stage-timing windows
    "quick": {"seconds": 17.0, "alone": 256, "engine": 3000, "stages": 128},
    "full": {"seconds": 30.0, "alone": 1024, "engine": 10000, "stages": 512},
}
KEY = "bench-key"  # the simulator accepts any key when its scenario configures none

SIM = """
import asyncio, sys
sys.path.insert(0, {root!r})
from evtui.sim import Scenario, SimServer
from evtui.frames.allocator import tune_allocator
tune_allocator()  # as `evtui sim` does
limits = {{"rpm": 10**9, "tpm": 10**12}}
scenario = Scenario.model_validate({{"providers": {{"openai": limits, "compat": limits}}}})
async def main():
    async with SimServer(scenario, port={port}, describer=False):
        print("ready", flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def config_yaml(size: tuple[int, int] | None) -> str:
    """Route mode over three targets the way a user would write it (keys from the env)."""
    lines = [
        "mode: route",
        "providers:",
        "  openai:",
        "    protocol: openai",
        "    base_url: ${BENCH_SIM_ROOT}",
        "    keys:",
        "      - key: ${BENCH_KEY}",
        "  gateway:",
        "    protocol: openai-compatible",
        "    base_url: ${BENCH_SIM_ROOT}/compat",
        "    keys:",
        "      - key: ${BENCH_KEY}",
        "targets:",
        "  - id: openai/gpt-4o",
        "    weight: 2",
        "    detail: low",
        "    fallbacks: [openai/gpt-4o-mini, gateway/gpt-4o]",
        "  - id: openai/gpt-4o-mini",
        "    detail: low",
        "    fallbacks: [gateway/gpt-4o]",
        "  - id: gateway/gpt-4o",
        "    detail: low",
        "prompts:",
        "  default:",
        "    text: Describe what moves in this event-camera frame in one sentence.",
        "max_output_tokens: 100",
        "cache:",
        "  enabled: false",
        "render:",
        "  method: cdframe",
        f"  window: {WINDOW}",
        f"  overlap: {OVERLAP}",
        "  format: jpeg",
        "  quality: 85",
    ]
    if size is not None:
        lines += [f"  width: {size[0]}", f"  height: {size[1]}"]
    return "\n".join(lines) + "\n"


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x360, got {text!r}")
    return int(w), int(h)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(port: int) -> subprocess.Popen[str]:
    code = SIM.format(root=str(ROOT), port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"simulator did not start (got {line!r})")
    return proc


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- the real run ------------------------------------------------------------------------


class LineCounter:
    """Lines appended to a file so far, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.count = 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.count
        cut = data.rfind(b"\n") + 1  # a line being written is counted once it ends
        self.count += data.count(b"\n", 0, cut)
        self.offset += cut
        return self.count


def run_cmd(
    config: Path, recording: Path, run_dir: Path, workers: int, profile: Path | None, fast: bool
) -> list[str]:
    """`evtui run … --no-ui`, or the same job with ranges decoded in one go (`_pipeline_fast`)."""
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    if fast:
        fast_py = str(HERE / "_pipeline_fast.py")
        return [*cmd, fast_py, str(config), str(recording), str(run_dir), str(workers)]
    cmd += ["-m", "evtui.cli", "run", str(config), str(recording), "--no-ui", "--json"]
    return [*cmd, "--run-dir", str(run_dir), "--workers", str(workers)]


def whole_run(
    cmd: list[str], run_dir: Path, env: dict[str, str], n_frames: int, sim_pid: int
) -> dict[str, Any]:
    """Run `cmd`; commits timed from the job files as they grow, CPU from /proc.

    A run slower than 20 frames/s (plus a minute) is interrupted: SIGTERM drains it.
    """
    from _common import proc_cpu_s
    from _pipeline_stages import TreeCPU

    caps, ledger = LineCounter(run_dir / "captions.jsonl"), LineCounter(run_dir / "ledger.jsonl")
    trace = LineCounter(run_dir / "trace.jsonl")
    marks: list[tuple[float, int]] = []
    sim0, busy0 = proc_cpu_s(sim_pid), machine_busy_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    tree = TreeCPU(proc.pid)
    next_tree = 0.0
    at_first: dict[str, float] = {}
    deadline = t0 + 60 + n_frames / 20
    while proc.poll() is None:
        now = time.perf_counter()
        if now > deadline:
            proc.terminate()
            deadline = math.inf
        n = caps.poll() + ledger.poll()
        if now >= next_tree or (n and not at_first):
            tree.sample()
            next_tree = now + 0.2
            if n and not at_first:  # start-up done: what follows is the steady per-frame cost
                at_first = {**tree.by_role(), "sim": proc_cpu_s(sim_pid), "n": n}
        if not marks or n != marks[-1][1]:
            marks.append((now - t0, n))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    n = caps.poll() + ledger.poll()
    if not marks or n != marks[-1][1]:
        marks.append((wall, n))
    cpu = tree.by_role()
    res: dict[str, Any] = {
        "rc": proc.returncode,
        "stderr": err,
        "wall": wall,
        "frames": n,
        "done": caps.count,
        "route_records": trace.poll(),
        "marks": marks,
        "cpu_main": cpu.get("main", 0.0),
        "cpu_workers": cpu.get("workers", 0.0),
        "cpu_sim": proc_cpu_s(sim_pid) - sim0,
        "cpu_machine": machine_busy_s() - busy0,
    }
    if at_first and n > at_first["n"]:
        m = n - at_first["n"]
        res["steady_ms"] = {
            "main": (res["cpu_main"] - at_first.get("main", 0.0)) / m * 1e3,
            "workers": (res["cpu_workers"] - at_first.get("workers", 0.0)) / m * 1e3,
            "sim": (proc_cpu_s(sim_pid) - at_first["sim"]) / m * 1e3,
        }
        res["startup_cpu"] = at_first.get("main", 0.0) + at_first.get("workers", 0.0)
    if n:
        (t_lo, c_lo), (t_hi, c_hi) = (next(m for m in marks if m[1] >= q * n) for q in (0.1, 0.9))
        res["sustained"] = (c_hi - c_lo) / (t_hi - t_lo) if t_hi > t_lo else 0.0
        res["first_commit"] = next(t for t, c in marks if c > 0)
        res["last_commit"] = marks[-1][0]
        res["e2e"] = n / res["last_commit"]
    return res


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def per_second(marks: list[tuple[float, int]]) -> list[int]:
    """Frames committed in each whole second of the run."""
    out, prev, i = [], 0, 0
    end = marks[-1][0] if marks else 0
    s = 1.0
    while s < end + 1:
        while i < len(marks) and marks[i][0] <= s:
            i += 1
        c = marks[i - 1][1] if i else 0
        out.append(c - prev)
        prev = c
        s += 1.0
    return out


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 17 s recording, under 90 s")
    ap.add_argument("--rate", type=float, default=2.0, help="mean Mev/s of the recording")
    ap.add_argument("--seconds", type=float, help="recording length (default 17 quick, 30)")
    ap.add_argument(
        "--size", type=parse_size, help="force the render size, e.g. 640x360 (default: targets')"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-breakdown", action="store_true", help="only the real run")
    ap.add_argument("--profile", metavar="DIR", help="cProfile the run's main process to DIR")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument(
        "--whatif",
        action=argparse.BooleanOptionalAction,
        help="also run the job with ranges decoded in one go (default: on, off with --quick)",
    )
    args = ap.parse_args()
    mode = MODES["quick" if args.quick else "full"]
    t_start = time.perf_counter()

    from _pipeline_recording import RecordingSpec, recording

    from evtui.config import parse_config
    from evtui.engine.job import render_size, window_spec
    from evtui.events.recording import Recording
    from evtui.frames.encode import EncodeSpec
    from evtui.frames.pipeline import FramePlan

    spec = RecordingSpec(seconds=args.seconds or mode["seconds"], rate_mev=args.rate)
    rec_path = recording(spec, log=lambda m: print("  " + m))
    rec = Recording(rec_path)
    idx = rec.index()  # cached by fingerprint: the run finds it as a user's second run would
    forced = args.size
    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    port = free_port()
    env = dict(os.environ, BENCH_SIM_ROOT=f"http://127.0.0.1:{port}", BENCH_KEY=KEY)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cfg_path = tmp / "bench_pipeline.yaml"
    cfg_path.write_text(config_yaml(forced), encoding="utf-8")
    cfg = parse_config(cfg_path.read_text(), str(cfg_path), env=env)
    size = render_size(cfg, rec.size)
    wspec = window_spec(cfg)
    n_frames = rec.window_count(wspec)
    r = cfg.render
    plan = FramePlan(
        path=str(rec_path),
        window=wspec,
        method=r.method,
        size=size,
        encode=EncodeSpec(formats=(r.format,), quality=r.quality),
        min_events=r.min_events,
    )
    print(
        f"recording {rec_path.name}: {rec.size[0]}x{rec.size[1]} {rec.format}, "
        f"{idx.event_count / 1e6:.1f} M events over {spec.seconds:g} s "
        f"({idx.event_count / spec.seconds / 1e6:.2f} Mev/s); windows {WINDOW} every "
        f"{wspec.step / 1000:g} ms ({OVERLAP} overlap): {n_frames:,} frames"
    )
    why = "forced by --size" if forced else "render_size(): gpt-4o/gpt-4o-mini at detail low"
    print(
        f"render {r.method} at {size[0]}x{size[1]} ({why}); jpeg q{r.quality}; route mode, "
        f"3 targets 2:1:1; simulator with fixed captions; {args.workers} worker processes; "
        f"{os.cpu_count()} cores"
    )
    failures: list[str] = []
    res: dict[str, Any] = {}
    sim = start_sim(port)
    try:
        parts: dict[str, Any] = {}
        if not args.skip_breakdown:
            parts = breakdown(plan, cfg, rec_path, size, mode, tmp, sim.pid, args.workers)
        # The real run ------------------------------------------------------------------
        print(f"\nwhole path: evtui run --no-ui --workers {args.workers}, {n_frames:,} frames")
        prof = None
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            prof = Path(args.profile) / "evtui_run.prof"
        cmd = run_cmd(cfg_path, rec_path, tmp / "run", args.workers, prof, fast=False)
        res = whole_run(cmd, tmp / "run", env, n_frames, sim.pid)
        if not report_run(res, n_frames, parts):
            failures.append("completeness")
        ok = res.get("sustained", 0.0) >= TARGET_FPS
        print(f"  sustained >= {TARGET_FPS:,.0f} frames/s -> {verdict(ok)}")
        if not ok:
            failures.append("rate")
        if prof is not None and prof.exists():
            show_profile(prof)
        if args.whatif if args.whatif is not None else not args.quick:
            print(
                "\nthe same job with each range decoded in one go (_pipeline_fast.py; same"
                " drawing, JPEGs and hashes), for comparison:"
            )
            cmd = run_cmd(cfg_path, rec_path, tmp / "run_fast", args.workers, None, fast=True)
            fast = whole_run(cmd, tmp / "run_fast", env, n_frames, sim.pid)
            report_run(fast, n_frames, {})
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n({time.perf_counter() - t_start:.0f} s) overall: "
        + ("PASS" if not failures else "FAIL: " + ", ".join(failures))
    )
    print(f"fps={res.get('sustained', 0.0):.1f} target={TARGET_FPS:.0f}")
    return 1 if failures else 0


def report_run(res: dict[str, Any], n_frames: int, parts: dict[str, Any]) -> bool:
    """Print one run's rates and CPU; False when it did not record every frame."""
    complete = res["rc"] == 0 and res["frames"] == n_frames == res["route_records"]
    if not complete:
        print(
            f"  run exited {res['rc']} with {res['frames']}/{n_frames} frames and "
            f"{res['route_records']} route records"
        )
        for line in res["stderr"].strip().splitlines()[-3:]:
            print("    " + line)
    n = res["frames"]
    if not n:
        return complete
    cores = os.cpu_count() or 2
    print(
        f"  {res['done']:,} captions + {n - res['done']:,} skipped/failed recorded, "
        f"{res['route_records']:,} route records; "
        f"process wall {res['wall']:.1f} s, first commit at {res['first_commit']:.1f} s"
    )
    print("  frames committed per second: " + " ".join(map(str, per_second(res["marks"]))))
    ms = res.get("steady_ms")
    if ms:
        total = sum(ms.values())
        print(
            f"  CPU per frame after start-up: run main process {ms['main']:.2f} ms, workers "
            f"{ms['workers']:.2f} ms, simulator {ms['sim']:.2f} ms; total {total:.2f} ms -> "
            f"CPU-bound ceiling on {cores} cores {cores / total * 1e3:,.0f} frames/s "
            f"(start-up took {res['startup_cpu']:.1f} s CPU)"
        )
    ours = res["cpu_main"] + res["cpu_workers"] + res["cpu_sim"]
    others = max(res["cpu_machine"] - ours, 0.0) / res["wall"]
    left = ""
    if ms:
        fit = max(cores - others, 0.0) / sum(ms.values()) * 1e3
        left = f"; the {cores - others:.2f} cores left allow {fit:,.0f} frames/s at that CPU cost"
    print(
        f"  other work on this machine during the run: {others:.2f} of {cores} cores "
        f"(load average now {os.getloadavg()[0]:.1f}){left}"
    )
    print(
        f"  end to end incl. start-up: {res['e2e']:,.0f} frames/s; sustained "
        f"(10-90 % of commits): {res['sustained']:,.0f} frames/s"
    )
    if parts:
        where(parts, res)
    return complete


def breakdown(
    plan: Any, cfg: Any, rec_path: Path, size: tuple[int, int], mode: dict[str, Any],
    tmp: Path, sim_pid: int, workers: int,
) -> dict[str, Any]:  # fmt: skip
    """Where a frame's time goes: stages, alternatives, pipeline alone, engine alone."""
    from _pipeline_stages import engine_alone, pipeline_alone, stage_times, whatif_times

    n = mode["stages"]
    k0 = 100  # past the start, where the recording is already moving
    st = stage_times(plan, k0, n)
    print(
        f"\n1. worker stages, CPU per frame ({st.frames} windows, {st.events:,} events each, "
        f"jpeg {st.bytes_jpeg / st.frames / 1e3:.0f} KB at {size[0]}x{size[1]}):"
    )
    names = ["decode", "window", "scale", "render", "encode", "hash", "b64"]
    names += ["pickle (worker)", "unpickle (parent)"]
    print("   " + "  ".join(f"{k} {st.ms(k):.2f}" for k in names) + " ms")
    print(
        f"   total {st.total_ms:.2f} ms -> {1e3 / st.total_ms:,.0f} frames/s per core "
        "for rendering alone"
    )
    wi = whatif_times(plan, k0, min(n, 128))
    print(
        "2. the alternatives to the workers' choices, on the same windows (CPU per frame):\n"
        f"   windows as read-only views {wi['windows_view_ms']:.2f} ms (the workers'), as "
        f"copies {wi['windows_copy_ms']:.2f} ms (decode included)\n"
        f"   sliding cdframe (only new events and expiring pixels redrawn) "
        f"{wi['sliding_cd_ms']:.2f} ms (the workers'), cdframe of each window (scale + "
        f"render) {wi['cdframe_ms']:.2f} ms; pixel-equal on {wi['sliding_cd_equal']}/"
        f"{wi['frames']} windows\n"
        f"   jpeg q85 from BGR {wi['jpeg_q85_ms']:.2f} ms ({wi['jpeg_q85_kb']:.0f} KB; the "
        f"workers'), from RGB {wi['jpeg_rgb_in_ms']:.2f} ms; q75 {wi['jpeg_q75_ms']:.2f} ms "
        f"({wi['jpeg_q75_kb']:.0f} KB: the quality is the config's, not changed here)\n"
        f"   encode from RGB, all threads' CPU: OpenCV single-threaded {wi['cv_single_ms']:.2f}"
        f" ms (the workers'), with its pool of {wi['cv_pool_threads']} threads "
        f"{wi['cv_pool_ms']:.2f} ms\n"
        f"   content hash: CRC-32 of the JPEG {st.ms('hash'):.2f} ms (no cache: the workers'),"
        f" SHA-256 of the JPEG {wi['sha_jpeg_ms']:.2f} ms, of the RGB pixels "
        f"{wi['hash_pixels_ms']:.2f} ms (the cache's key)"
    )
    n_alone = mode["alone"]
    print(f"3. pipeline alone into a null sink ({n_alone} windows each, pool warmed):")
    pool: list[Any] = []
    for kind in ("process", "thread"):
        for w in sorted({1, workers}):
            r = pipeline_alone(plan, kind, w, range(k0, k0 + n_alone), keep=256 if not pool else 0)
            pool = pool or r["kept"]
            print(
                f"   {kind:<7} x{w}: {r['fps']:6,.0f} frames/s, {r['cpu_ms']:.2f} ms CPU/frame "
                "(workers + parent)"
            )
    n_eng = mode["engine"]
    print(f"4. engine alone, {n_eng:,} pre-encoded frames ({len(pool)} distinct, cycled):")
    sinks = [("job store", tmp / "engine_run")]
    if n_eng >= 10000:
        sinks.append(("memory", None))
    engines = {}
    for label, run_dir in sinks:
        e = engines[label] = engine_alone(cfg, str(rec_path), size, pool, n_eng, run_dir, sim_pid)
        print(
            f"   commit to {label}: {e['fps']:6,.0f} frames/s, engine {e['cpu_ms']:.2f} ms CPU/"
            f"frame, simulator {e['sim_ms']:.2f} ms/frame ({e['done']:,} done, {e['state']})"
        )
    return {"stages": st, "whatif": wi, "engine": engines["job store"]}


def where(parts: dict[str, Any], res: dict[str, Any]) -> None:
    """One line: a frame's CPU by stage, against what 800 frames/s on this machine allows."""
    n = res["frames"]
    cores = os.cpu_count() or 2
    budget = cores / TARGET_FPS * 1e3
    ms = res.get("steady_ms") or {k: res[f"cpu_{k}"] / n * 1e3 for k in ("main", "workers", "sim")}
    st = parts.get("stages")
    if st is None:
        items = [("workers", ms["workers"])]
    else:
        items = [(k, st.ms(k)) for k in ("decode", "window", "scale", "render")]
        items += [("jpeg", st.ms("encode")), ("hash", st.ms("hash")), ("b64", st.ms("b64"))]
        items.append(("pickle", st.ms("pickle (worker)")))
    items += [("run main process (engine, store, unpickle)", ms["main"]), ("simulator", ms["sim"])]
    total = sum(v for _, v in items)
    print(
        "  where a frame's CPU goes (ms): "
        + " | ".join(f"{k} {v:.2f}" for k, v in items)
        + f" = {total:.2f}; {TARGET_FPS:.0f} frames/s on {cores} cores allows {budget:.2f}"
    )


def show_profile(path: Path) -> None:
    import pstats

    print(f"\nprofile of the run's main process ({path}), top by own time:")
    st = pstats.Stats(str(path))
    st.sort_stats("tottime")
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # type: ignore[attr-defined]
    for (file, line, fn), (_, nc, tt, ct, _) in rows:
        print(f"   {tt:7.2f} s own {ct:7.2f} s cum {nc:>9} calls  {Path(file).name}:{line} {fn}")


if __name__ == "__main__":
    sys.exit(main())
