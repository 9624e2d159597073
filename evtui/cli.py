"""The `evtui` command. Every failure the user can cause ends in one line and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from evtui import __version__
from evtui.events.errors import RecordingError
from evtui.frames.allocator import tune_allocator

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad argument: printed as one line, exit 2."""


def _geometry(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--geometry: expected WIDTHxHEIGHT like 640x480, got '{text}'") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"--geometry: width and height must be positive, got '{text}'")
    return w, h


def _warn(reader_diag, path: Path) -> None:
    for line in reader_diag.lines(path):
        print(line, file=sys.stderr)


# -- info ------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    from evtui.console import Progress, human_count, human_duration_us
    from evtui.events.recording import Recording

    rec = Recording(args.file, format=args.format, geometry=_geometry(args.geometry))
    size_bytes = rec.path.stat().st_size
    bar = Progress("indexing", total=size_bytes)
    last = [0]

    def progress(pos: int) -> None:
        bar.advance(max(0, pos - last[0]))
        last[0] = pos

    idx = rec.index(progress if rec.format not in ("hdf5", "npy", "npz") else None)
    bar.clear()
    w, h = rec.size
    facts = {
        "file": str(rec.path),
        "format": rec.format,
        "description": rec.reader.description,
        "width": w,
        "height": h,
        "geometry_source": rec.geometry_source,
        "events": idx.event_count,
        "first_t_us": idx.t_min_all,
        "last_t_us": idx.t_max_all,
        "duration_us": idx.duration_us,
        "mean_rate_ev_s": round(idx.mean_rate, 1),
        "peak_rate_ev_s": round(idx.peak_rate, 1),
        "triggers": idx.trigger_count,
        "bytes": size_bytes,
        "fingerprint": rec.fingerprint,
        "header": dict(rec.info.header),
        "warnings": dict(rec.reader.diagnostics.counts),
    }
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        rows = [
            ("file", facts["file"]),
            ("format", f"{rec.format} ({rec.reader.description})"),
            ("sensor", f"{w}x{h} ({rec.geometry_source})"),
            ("events", str(idx.event_count)),
            ("first t", f"{idx.t_min_all} us"),
            ("last t", f"{idx.t_max_all} us"),
            ("duration", human_duration_us(idx.duration_us)),
            ("mean rate", f"{human_count(idx.mean_rate)}ev/s"),
            ("peak rate", f"{human_count(idx.peak_rate)}ev/s (10 ms bins)"),
            ("triggers", str(idx.trigger_count)),
            ("size", f"{human_count(size_bytes)}B"),
            (
                "bytes/event",
                f"{size_bytes / idx.event_count:.2f}" if idx.event_count else "-",
            ),
            ("fingerprint", rec.fingerprint),
        ]
        for key, value in rec.info.header.items():
            rows.append((f"header.{key}", value))
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        _warn(rec.reader.diagnostics, rec.path)
    return EXIT_OK


# -- render ----------------------------------------------------------------------------


def _render_params(pairs: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param: expected key=value, got '{pair}'")
        v: object = value
        for conv in (int, float):
            try:
                v = conv(value)
                break
            except ValueError:
                continue
        out[key.replace("-", "_")] = v
    return out


def _frame_range(text: str | None, total: int | None) -> tuple[int, int | None]:
    if not text:
        return 0, None
    a, sep, b = text.partition(":")
    try:
        start = int(a) if a else 0
        stop = (int(b) if b else None) if sep else start + 1
    except ValueError:
        raise UsageError(f"--frames: expected A:B window indices, got '{text}'") from None
    if start < 0 or (stop is not None and stop <= start):
        raise UsageError(f"--frames: expected 0 <= A < B, got '{text}'")
    return start, stop


def cmd_render(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from evtui.console import Progress
    from evtui.events import render as rmod
    from evtui.events.recording import Recording
    from evtui.events.windows import WindowSpec

    if args.method not in rmod.RENDERERS:
        raise UsageError(
            f"--method: unknown '{args.method}' (one of {', '.join(rmod.list_methods())})"
        )
    try:
        spec = WindowSpec.parse(
            args.window, overlap=args.overlap, stride=args.stride, start=args.start, end=args.end
        )
    except ValueError as e:
        raise UsageError(f"--window: {e}") from None
    params = _render_params(args.param or [])
    rec = Recording(args.recording, format=args.format, geometry=_geometry(args.geometry))
    w, h = rec.size
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create output directory: {e.strerror or e}") from None
    first, stop = _frame_range(args.frames, None)
    if args.limit is not None:
        stop = first + args.limit if stop is None else min(stop, first + args.limit)

    renderer = rmod.renderer(args.method, w, h, **params)
    if args.sheet:
        total = rec.window_count(spec)
        stop = total if stop is None else min(stop, total)
        n_tiles = min(args.sheet_max, max(0, stop - first))
        picks = np.unique(np.linspace(first, stop - 1, n_tiles).round().astype(int))
        bar = Progress("rendering sheet", total=len(picks))
        tiles = []
        for k in picks:
            win = rec.window(spec, int(k))
            tiles.append((win, renderer(win)))
            bar.advance()
        sheet = contact_sheet(
            tiles, args.sheet_width, f"{rec.path.name}  {args.method}  {spec.describe()}"
        )
        path = out / "sheet.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise UsageError(f"{path}: cannot write PNG")
        bar.close(f"wrote {path} ({len(tiles)} frames)")
        _warn(rec.reader.diagnostics, rec.path)
        return EXIT_OK

    total = None
    if rec.path.stat().st_size <= 256 << 20 or rec.has_index:
        total = rec.window_count(spec)
        stop = total if stop is None else min(stop, total)
    bar = Progress("rendering", total=(stop - first) if stop is not None else None)
    written = 0
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    windows = (
        (rec.window(spec, k) for k in range(first, stop))
        if first and stop is not None and first > 64
        else rec.windows(spec)
    )
    for win in windows:
        if win.index < first:
            continue
        if stop is not None and win.index >= stop:
            break
        img = renderer(win)
        path = out / f"frame_{win.index:06d}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), png):
            raise UsageError(f"{path}: cannot write PNG (disk full or not writable?)")
        written += 1
        bar.advance()
    bar.close(f"wrote {written} frames to {out}/")
    _warn(rec.reader.diagnostics, rec.path)
    return EXIT_OK


def contact_sheet(tiles, tile_width: int, title: str):
    """A grid of rendered windows, each labelled with its index and time span."""
    import cv2
    import numpy as np

    if not tiles:
        return np.zeros((32, tile_width, 3), np.uint8)
    h0, w0 = tiles[0][1].shape[:2]
    tw = tile_width
    th = max(1, round(h0 * tw / w0))
    cols = max(1, min(len(tiles), round((len(tiles) * 16 / 9 * th / tw) ** 0.5)))
    rows = -(-len(tiles) // cols)
    pad, label_h, title_h = 4, 16, 24
    sheet = np.full(
        (title_h + rows * (th + label_h + pad) + pad, cols * (tw + pad) + pad, 3), 24, np.uint8
    )
    cv2.putText(sheet, title, (pad, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1)
    for i, (win, img) in enumerate(tiles):
        r, c = divmod(i, cols)
        y = title_h + r * (th + label_h + pad)
        x = pad + c * (tw + pad)
        sheet[y : y + th, x : x + tw] = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
        label = f"#{win.index}  {win.t0_us / 1e6:.3f}s  {len(win.events)} ev"
        cv2.putText(
            sheet, label, (x, y + th + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (200, 200, 200), 1
        )
    return sheet


# -- convert ---------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    import numpy as np

    from evtui.console import Progress
    from evtui.events.io import format_for_output, open_writer
    from evtui.events.recording import Recording
    from evtui.events.windows import parse_duration_us

    src = Path(args.input)
    dst = Path(args.output)
    try:
        start = parse_duration_us(args.start) if args.start else None
        end = parse_duration_us(args.end) if args.end else None
    except ValueError as e:
        raise UsageError(f"--start/--end: {e}") from None
    if src.resolve() == dst.resolve():
        raise UsageError(f"{dst}: output is the input file")
    fmt = format_for_output(dst, args.to)
    rec = Recording(src, format=args.format, geometry=_geometry(args.geometry))
    w, h = rec.size
    tmp = dst.with_name(dst.name + ".partial")
    bar = Progress("converting", total=src.stat().st_size)
    n = 0
    dropped_triggers = 0
    opts = {}
    if args.compression:
        opts["compression"] = args.compression
    try:
        with open_writer(tmp, w, h, format=fmt, **opts) as writer:
            last = 0
            for block in rec.reader.blocks():
                ev = block.events
                trig = block.triggers
                if start is not None or end is not None:
                    lo = start if start is not None else np.iinfo(np.int64).min
                    hi = end if end is not None else np.iinfo(np.int64).max
                    ev = ev[(ev["t"] >= lo) & (ev["t"] < hi)]
                    trig = trig[(trig["t"] >= lo) & (trig["t"] < hi)]
                if len(trig) and not writer.supports_triggers:
                    dropped_triggers += len(trig)
                    trig = trig[:0]
                if len(ev) or len(trig):
                    writer.write(ev, trig if len(trig) else None)
                    n += len(ev)
                bar.advance(max(0, block.start.position - last))
                last = block.start.position
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    bar.close(f"wrote {n} events to {dst} ({fmt}, {w}x{h})")
    if dropped_triggers:
        print(
            f"{dst}: warning: {dropped_triggers} trigger edges not written: "
            f"the {fmt} writer cannot store triggers",
            file=sys.stderr,
        )
    _warn(rec.reader.diagnostics, rec.path)
    return EXIT_OK


# -- sim -------------------------------------------------------------------------------


def cmd_sim(args: argparse.Namespace) -> int:
    from evtui.sim import run_sim

    for name in ("rpm", "tpm"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name}: must be a positive number, got {value}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0-65535, got {args.port}")
    return run_sim(args.port, args.scenario, args.rpm, args.tpm, host=args.host)


# -- entry point -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evtui",
        description="Caption event-camera recordings with vision-language models.",
    )
    p.add_argument("--version", action="version", version=f"evtui {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def recording_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--format", help="force the input format instead of detecting it")
        sp.add_argument("--geometry", help="sensor size WIDTHxHEIGHT when the file has none")

    sp = sub.add_parser("info", help="format, sensor, duration, event count and rates")
    sp.add_argument("file")
    sp.add_argument("--json", action="store_true", help="print the facts as JSON")
    recording_opts(sp)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("render", help="render windows of a recording to PNG frames")
    sp.add_argument("recording")
    sp.add_argument("--method", "-m", default="cdframe", help="renderer (see --method list)")
    sp.add_argument("--window", "-w", default="33ms", help="33ms, 1s, 500us or 20000ev")
    sp.add_argument("--overlap", help="50%% or a duration / event count")
    sp.add_argument("--stride", help="window start-to-start step (overrides --overlap)")
    sp.add_argument("--start", help="first time to include, e.g. 1.5s")
    sp.add_argument("--end", help="time to stop before, e.g. 3s")
    sp.add_argument("--frames", help="window indices A:B (B exclusive)")
    sp.add_argument("--limit", type=int, help="at most this many frames")
    sp.add_argument("--param", "-p", action="append", help="renderer parameter key=value")
    sp.add_argument("--out", "-o", required=True, help="output directory")
    sp.add_argument("--sheet", action="store_true", help="write one contact sheet instead")
    sp.add_argument("--sheet-max", type=int, default=48, help="frames on the sheet (sampled)")
    sp.add_argument("--sheet-width", type=int, default=240, help="tile width in pixels")
    recording_opts(sp)
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser("convert", help="convert a recording between formats, streaming")
    sp.add_argument("input")
    sp.add_argument("output")
    sp.add_argument("--to", help="output format (default: from the output extension)")
    sp.add_argument("--start", help="first time to keep (µs, or 1.5s, 200ms)")
    sp.add_argument("--end", help="time to stop before")
    sp.add_argument("--compression", help="writer compression (aedat4: lz4, zstd, none)")
    recording_opts(sp)
    sp.set_defaults(func=cmd_convert)

    sp = sub.add_parser(
        "sim", help="serve simulated OpenAI, Anthropic, Gemini and compatible APIs on loopback"
    )
    sp.add_argument("--port", type=int, default=8787, help="port on 127.0.0.1 (0: any free)")
    sp.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    sp.add_argument("--scenario", help="YAML scenario: limits, latency, faults over time")
    sp.add_argument("--rpm", type=int, help="requests per minute per key, every provider")
    sp.add_argument("--tpm", type=int, help="tokens per minute per key, every provider")
    sp.set_defaults(func=cmd_sim)

    from evtui.cache.cli import add_cache_parser
    from evtui.cli_config import add_config_parser
    from evtui.cli_jobs import add_job_parsers
    from evtui.cli_run import add_run_parser
    from evtui.demo import add_demo_parser
    from evtui.pilot.cli import add_pilot_parser

    add_demo_parser(sub)
    add_run_parser(sub)
    add_pilot_parser(sub, load_ui=_load_ui)
    add_job_parsers(sub)
    add_config_parser(sub)
    add_cache_parser(sub, config_cache_dir=_config_cache_dir)
    return p


def _load_ui() -> Callable[..., int] | None:
    """The app's entry point, imported only when a command shows the app."""
    try:
        from evtui.tui.app import run_app
    except ImportError:
        return None
    return run_app


def _config_cache_dir(path: str) -> str | None:
    from evtui.config import ConfigError, load_config

    try:
        return load_config(path).cache.dir
    except ConfigError as e:
        raise ValueError(e.report()) from None


def main(argv: Sequence[str] | None = None) -> int:
    tune_allocator()  # every command streams frame-sized buffers (see the module)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return func(args)
    except (RecordingError, UsageError) as e:
        print(f"evtui: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        # Disk full, permissions, a vanished file: one line, never a traceback.
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"evtui: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("evtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
