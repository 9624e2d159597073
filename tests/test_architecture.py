"""DESIGN.md's import rules, enforced: data flows one way and the core is Textual-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "evtui"

# Which evtui packages each package may import (DESIGN.md, "Packages and what each may import").
ALLOWED: dict[str, set[str]] = {
    "events": {"events"},
    "frames": {"frames", "events"},
    "providers": {"providers"},
    "cache": {"cache", "frames", "events"},
    "jobs": {"jobs"},
    "sim": {"sim", "providers"},
    "engine": {"engine", "providers", "frames", "cache", "jobs", "events", "config"},
    "tui": {"tui", "engine", "events", "frames", "config", "console"},
    "config": {"config", "providers"},
    "pilot": {"pilot", "engine", "jobs", "events", "config", "cli_run"},
}
# Third-party packages a package must never import (its layer does not own them).
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "events": {"textual", "rich", "aiohttp", "pydantic", "yaml", "diskcache", "orjson"},
    "frames": {"textual", "rich", "aiohttp", "pydantic"},
    "engine": {"textual", "rich"},
    "pilot": {"textual", "rich"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules_in(package: str) -> list[Path]:
    single = PKG / f"{package}.py"
    return [single] if single.is_file() else sorted((PKG / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_one_way_imports(package):
    bad = []
    for path in modules_in(package):
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] == "evtui" and len(parts) > 1 and parts[1] not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if parts[0] in FORBIDDEN_THIRD_PARTY.get(package, set()):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


HEADLESS = [
    "evtui.events.io",
    "evtui.events.recording",
    "evtui.events.render",
    "evtui.engine.dispatcher",
    "evtui.engine.thread",
    "evtui.jobs",
    "evtui.pilot.cli",
    "evtui.demo",
    "evtui.cli",
]


def test_headless_modules_do_not_load_textual_or_rich():
    code = (
        "import importlib, sys\n"
        f"for m in {HEADLESS!r}: importlib.import_module(m)\n"
        "from evtui.events.io import _FORMATS, reader_class\n"
        "for f in _FORMATS: reader_class(f)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
