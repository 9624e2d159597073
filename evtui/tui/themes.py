"""Themes are data: one TOML file per theme, loaded at start-up, the user's after ours.

A theme file holds `textual.theme.Theme` fields (`name`, `primary`, ... `dark`) and an
optional `[variables]` table of component variables. The app's stylesheet takes every
colour from theme variables, so a file restyles everything. A bad file is reported
(file and reason) and skipped; it never stops the app.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "evtui-dark"
THEMES_ENV = "EVTUI_THEMES_DIR"
_FIELDS = {f.name: f for f in dataclasses.fields(Theme)}
_COLOURS = ("primary", "secondary", "warning", "error", "success", "accent")
_COLOURS += ("foreground", "background", "surface", "panel", "boost")


def builtin_dir() -> Path:
    """Our theme files: $EVTUI_THEMES_DIR, else the `themes/` folder of the source tree,
    else where `pip install .` put them (<prefix>/share/evtui/themes)."""
    env = os.environ.get(THEMES_ENV)
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2] / "themes"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "evtui" / "themes"


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "evtui" / "themes"


def theme_from(data: dict[str, Any], source: str) -> Theme:
    """A Theme from a parsed file; raises ValueError naming the file and every problem."""
    problems = [f"unknown key {k!r}" for k in data if k not in _FIELDS]
    if not isinstance(data.get("name"), str) or not data.get("name"):
        problems.append("'name' must be a non-empty string")
    if "primary" not in data:
        problems.append("'primary' is required")
    for k in _COLOURS:
        v = data.get(k)
        if v is None:
            continue
        try:
            Color.parse(v)
        except (ColorParseError, TypeError, ValueError):
            problems.append(f"{k}: {v!r} is not a colour")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        problems.append("[variables] must be a table of name = colour")
        variables = {}
    for k, v in variables.items():
        if not isinstance(v, str):
            problems.append(f"variables.{k}: expected a string, got {type(v).__name__}")
    if "dark" in data and not isinstance(data["dark"], bool):
        problems.append("'dark' must be true or false")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    return Theme(**data)


def load_dir(folder: Path) -> tuple[list[Theme], list[str]]:
    """Every *.toml theme in folder (sorted by name), and one line per file skipped."""
    themes: list[Theme] = []
    problems: list[str] = []
    if not folder.is_dir():
        return themes, problems
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            themes.append(theme_from(data, str(path)))
        except tomllib.TOMLDecodeError as e:
            problems.append(f"{path}: not valid TOML: {e}")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}")
        except ValueError as e:
            problems.append(str(e))
    return themes, problems


def load_themes(
    dirs: tuple[Path, ...] | None = None,
) -> tuple[dict[str, Theme], list[str]]:
    """Our themes, then the user's (a user theme of the same name replaces ours)."""
    out: dict[str, Theme] = {}
    problems: list[str] = []
    for d in dirs if dirs is not None else (builtin_dir(), user_dir()):
        themes, bad = load_dir(d)
        out.update((t.name, t) for t in themes)
        problems += bad
    return out, problems


__all__ = ["DEFAULT_THEME", "builtin_dir", "load_dir", "load_themes", "theme_from", "user_dir"]
