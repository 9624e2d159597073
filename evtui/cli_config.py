"""`evtui config check FILE`: validate a config and print the resolved routing tree."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def cmd_config_check(args: argparse.Namespace) -> int:
    """Exit 0 and print the routing tree, or exit 2 with every problem, one per line."""
    from evtui.config import ConfigError, describe_routing, load_config

    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        for line in e.report().splitlines():
            print(line, file=sys.stderr)
        n = len(e.problems)
        print(f"{e.path}: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(describe_routing(cfg))
    print(f"{args.file}: ok")
    return EXIT_OK


def add_config_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `config check FILE` on the top-level `evtui` subparsers."""
    p = subparsers.add_parser("config", help="check a job config and show its routing")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    sp = sub.add_parser("check", help="validate a config; print every problem or the routing")
    sp.add_argument("file", help="the YAML config")
    sp.set_defaults(func=cmd_config_check)
    return p
