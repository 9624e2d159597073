"""Every key the app answers to, as data: id, keys, action, description, tooltip.

The footer shows the `show=True` ones, the command palette lists them all, and a user
keymap file remaps any of them by id:

    # ~/.config/evtui/keymap.yaml (or $EVTUI_KEYMAP): binding id -> keys, comma-separated
    next-frame: j,right
    accept: y

Every problem in a keymap file is reported at once with its line, as the config does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from textual.binding import Binding

KEYMAP_ENV = "EVTUI_KEYMAP"


@dataclass(frozen=True, slots=True)
class BindingSpec:
    id: str
    keys: str  # Textual key names, comma-separated
    action: str
    description: str
    tooltip: str
    show: bool = False  # in the footer
    palette: bool = True  # in the command palette
    priority: bool = False  # ahead of the focused widget (only for keys no input types)
    key_display: str | None = None  # what the footer shows instead of the key name

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.description,
            show=self.show,
            tooltip=self.tooltip,
            id=self.id,
            priority=self.priority,
            key_display=self.key_display,
        )


# The main screen: frames, captions, review, engine control.
MAIN: tuple[BindingSpec, ...] = (
    BindingSpec(
        "next-frame",
        "right,l",
        "next_frame",
        "Next",
        "Next frame in the list",
        True,
        key_display="→",
    ),
    BindingSpec(
        "prev-frame",
        "left,h",
        "prev_frame",
        "Prev",
        "Previous frame in the list",
        True,
        key_display="←",
    ),
    BindingSpec("first-frame", "home", "first_frame", "First frame", "First frame in the list"),
    BindingSpec("last-frame", "end", "last_frame", "Last frame", "Last frame in the list"),
    BindingSpec("goto-frame", "g", "goto_frame", "Go to frame", "Jump to frame number N"),
    BindingSpec(
        "next-unreviewed",
        "u",
        "next_unreviewed",
        "Next unreviewed",
        "Next captioned frame without a review",
    ),
    BindingSpec("next-failed", "f", "next_failed", "Next failed", "Next frame with a failure"),
    BindingSpec(
        "next-disagreement",
        "d",
        "next_disagreement",
        "Next disagreement",
        "Next frame whose providers' captions disagree",
    ),
    BindingSpec(
        "toggle-pause",
        "space",
        "toggle_pause",
        "Pause/Run",
        "Pause the engine (in-flight requests finish) or resume it",
        True,
    ),
    BindingSpec(
        "next-column", "tab,]", "next_column", "Next column", "Select the next caption column"
    ),
    BindingSpec(
        "prev-column",
        "shift+tab,[",
        "prev_column",
        "Previous column",
        "Select the previous caption column",
    ),
    BindingSpec("accept", "a", "review('accept')", "Accept", "Accept the selected caption", True),
    BindingSpec("reject", "x", "review('reject')", "Reject", "Reject the selected caption", True),
    BindingSpec(
        "edit",
        "e",
        "edit_caption",
        "Edit",
        "Write a corrected caption; the provider's answer is kept as it was",
        True,
    ),
    BindingSpec(
        "prefer",
        "p",
        "prefer",
        "Prefer",
        "Mark the selected column's provider as the best for this frame",
    ),
    BindingSpec(
        "rerun",
        "r",
        "rerun_one",
        "Rerun",
        "Caption this frame again on the selected target",
        True,
    ),
    BindingSpec(
        "rerun-all", "R", "rerun_all", "Rerun all", "Caption this frame again on every target"
    ),
    BindingSpec(
        "explain",
        "enter,i",
        "explain",
        "Explain",
        "Full route record of every target for this frame",
        True,
    ),
    BindingSpec(
        "render-method",
        "m",
        "pick_render",
        "Render method",
        "Preview another render method (the job's own frames are unchanged)",
    ),
    BindingSpec(
        "weights", "w", "edit_weights", "Weights", "Change the targets' routing weights live"
    ),
    BindingSpec(
        "filter",
        "slash",
        "pick_filter",
        "Filter",
        "Show only failed, cached, skipped, disagreeing or unreviewed frames",
        True,
    ),
)

# The whole app: quit and screenshots.
APP: tuple[BindingSpec, ...] = (
    BindingSpec(
        "quit",
        "q",
        "quit",
        "Quit",
        "Quit: in-flight requests finish, unfinished frames stay "
        "pending and the same command resumes them; again to stop at once",
        True,
        False,
    ),
    BindingSpec(
        "interrupt",
        "ctrl+c",
        "quit",
        "Quit",
        "Quit (as q), from anywhere",
        False,
        False,
        priority=True,
    ),
    BindingSpec(
        "screenshot",
        "f8",
        "screenshot",
        "Screenshot",
        "Save an SVG screenshot in the run directory",
    ),
)

# The explain view.
EXPLAIN: tuple[BindingSpec, ...] = (
    BindingSpec("close", "escape,enter,i,q", "close", "Close", "Back to the frame", True, False),
    BindingSpec(
        "explain-next",
        "right,l",
        "step(1)",
        "Next",
        "Explain the next frame",
        True,
        key_display="→",
    ),
    BindingSpec(
        "explain-prev",
        "left,h",
        "step(-1)",
        "Prev",
        "Explain the previous frame",
        True,
        key_display="←",
    ),
)

ALL: tuple[BindingSpec, ...] = MAIN + APP + EXPLAIN


class KeymapError(Exception):
    """A keymap file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def default_keymap_path() -> Path:
    env = os.environ.get(KEYMAP_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "evtui" / "keymap.yaml"


def parse_keymap(text: str, source: str = "<keymap>") -> dict[str, str]:
    """binding id -> keys from YAML text; raises KeymapError naming every bad line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise KeymapError([f"{where}: not valid YAML: {e.problem}"]) from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise KeymapError(
            [f"{source}:{node.start_mark.line + 1}: expected a mapping of binding id to keys"]
        )
    known = {b.id for b in ALL}
    out: dict[str, str] = {}
    problems: list[str] = []
    for knode, vnode in node.value:
        where = f"{source}:{knode.start_mark.line + 1}:{knode.start_mark.column + 1}"
        bid = knode.value
        if bid not in known:
            problems.append(
                f"{where}: unknown binding id {bid!r} (known: {', '.join(sorted(known))})"
            )
            continue
        if not isinstance(vnode, yaml.ScalarNode) or not str(vnode.value).strip():
            problems.append(f"{where}: {bid}: expected keys like 'j' or 'j,right'")
            continue
        keys = ",".join(k.strip() for k in str(vnode.value).split(",") if k.strip())
        if not keys:
            problems.append(f"{where}: {bid}: expected keys like 'j' or 'j,right'")
            continue
        out[bid] = keys
    if problems:
        raise KeymapError(problems)
    return out


def load_keymap(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The user's keymap (default path when None); an absent file is an empty keymap."""
    p = Path(path) if path is not None else default_keymap_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise KeymapError([f"{p}: cannot read: {getattr(e, 'strerror', None) or e}"]) from None
    return parse_keymap(text, str(p))


__all__ = [
    "ALL",
    "APP",
    "EXPLAIN",
    "MAIN",
    "BindingSpec",
    "KeymapError",
    "default_keymap_path",
    "load_keymap",
    "parse_keymap",
]
