"""`evtui cache stats|prune|clear`: look after the shared caption cache from the shell."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evtui.cache.semantic import CacheError, SemanticCache, default_cache_dir

EXIT_OK = 0
EXIT_BAD_INPUT = 2

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*", re.IGNORECASE)
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", re.IGNORECASE)
_SIZE_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '3600s', '2w' (a bare number is seconds) -> seconds."""
    m = _DURATION.fullmatch(str(text))
    if not m:
        raise ValueError(f"expected an age like 30d, 12h, 90m or 3600s, got '{text}'")
    return float(m.group(1)) * _DURATION_S[(m.group(2) or "s").lower()]


def parse_size(text: str) -> int:
    """'2GB', '500M', '1.5GiB', '800k', '123' (bytes) -> bytes; KB/MB/GB are powers of 1000."""
    m = _SIZE.fullmatch(str(text))
    if not m:
        raise ValueError(f"expected a size like 500MB, 2GB or 1.5GiB, got '{text}'")
    base = 1024 if m.group(3) else 1000
    return int(float(m.group(1)) * base ** _SIZE_POW[m.group(2).lower()])


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    days = (time.time() - t) / 86400
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(t))} ({days:.1f} days ago)"


def _directory(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    from_config = getattr(args, "_config_cache_dir", None)
    if from_config is not None and getattr(args, "config", None):
        try:
            got = from_config(args.config)
        except Exception as e:  # the config layer's own errors: one line, no traceback
            raise ValueError(f"{args.config}: {e}") from e
        if got:
            return Path(got)
    return default_cache_dir()


def _print_stats(s: dict[str, Any]) -> None:
    ses = s["session"]
    rows = [
        ("cache", s["directory"]),
        ("entries", f"{s['entries']:,} in {s['partitions']} partition(s)"),
        ("captions", f"{s['stored_records']:,} stored, {_human_bytes(s['store_bytes'])}"),
        ("index", f"{_human_bytes(s['index_bytes'])} (base + {s['segments']} live segment(s))"),
        ("oldest", _when(s["oldest"])),
        ("newest", _when(s["newest"])),
        ("threshold", f"{s['threshold_bits']} of {s['fingerprint_bits']} bits"),
    ]
    if ses["lookups"]:
        rows.append(("this session", f"{ses['lookups']} lookups, hit rate {ses['hit_rate']:.1%}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for p in s["problems"]:
        print(f"warning: {p}", file=sys.stderr)


def cmd_cache(args: argparse.Namespace) -> int:
    """Run one cache action; every failure is one line on stderr and exit code 2."""
    try:
        directory = _directory(args)
        action = args.cache_command
        if action == "clear" and not args.yes:
            msg = f"this deletes every cached caption in {directory}; add --yes to confirm"
            print(f"evtui: error: {msg}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if action == "prune":
            max_age = parse_age(args.older_than) if args.older_than else None
            max_bytes = parse_size(args.max_size) if args.max_size else None
            if max_age is None and max_bytes is None:
                msg = "prune needs --older-than AGE and/or --max-size SIZE"
                print(f"evtui: error: {msg}", file=sys.stderr)
                return EXIT_BAD_INPUT
        if not directory.exists():
            if action == "stats" and args.json:
                print(json.dumps({"directory": str(directory), "exists": False, "entries": 0}))
            else:
                print(f"{directory}: no cache here")
            return EXIT_OK
        with SemanticCache.open(directory) as cache:
            if action == "stats":
                s = cache.stats()
                if args.json:
                    print(json.dumps(s, indent=2))
                else:
                    _print_stats(s)
            elif action == "prune":
                out = cache.prune(max_age=max_age, max_bytes=max_bytes)
                if args.json:
                    print(json.dumps(out))
                else:
                    print(
                        f"{directory}: removed {out['removed']:,} entries, kept {out['kept']:,}, "
                        f"freed {_human_bytes(out['freed_bytes'])}"
                    )
            else:
                n = cache.stats()["entries"]
                cache.clear()
                print(f"{directory}: cleared {n:,} entries")
    except CacheError as e:
        print(f"evtui: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as e:
        print(f"evtui: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def add_cache_parser(
    subparsers: Any, *, config_cache_dir: Callable[[str], str | None] | None = None
) -> argparse.ArgumentParser:
    """Register `cache stats|prune|clear` on the top-level `evtui` subparsers.

    config_cache_dir: given, each action also takes `--config FILE` and uses that file's
    `cache.dir` (the callable maps a config path to it; it may raise ValueError).
    """
    p = subparsers.add_parser("cache", help="statistics, pruning and clearing of the caption cache")
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dir", help="cache directory (default: $EVTUI_CACHE_DIR/captions)")
        if config_cache_dir is not None:
            sp.add_argument("--config", metavar="FILE", help="use this job config's cache.dir")
        sp.set_defaults(func=cmd_cache, _config_cache_dir=config_cache_dir)

    sp = sub.add_parser("stats", help="entries, sizes, ages and the near-duplicate threshold")
    sp.add_argument("--json", action="store_true", help="print the statistics as JSON")
    common(sp)
    sp = sub.add_parser("prune", help="drop old entries, or the oldest beyond a size")
    sp.add_argument("--older-than", metavar="AGE", help="drop entries older than AGE (e.g. 30d)")
    sp.add_argument("--max-size", metavar="SIZE", help="then keep at most SIZE (e.g. 2GB)")
    sp.add_argument("--json", action="store_true", help="print the counts as JSON")
    common(sp)
    sp = sub.add_parser("clear", help="delete every cached caption")
    sp.add_argument("--yes", action="store_true", help="confirm")
    common(sp)
    return p
