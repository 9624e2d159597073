"""Small modal dialogs: go to frame, edit a caption, pick one of a list, set weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import Number
from textual.widgets import Input, Label, OptionList, TextArea
from textual.widgets.option_list import Option

CANCEL: list[BindingType] = [Binding("escape", "cancel", "Cancel", id="dialog-cancel")]


class GotoScreen(ModalScreen[int | None]):
    """Ask for a frame number in [0, n)."""

    BINDINGS = CANCEL

    def __init__(self, n_frames: int) -> None:
        super().__init__()
        self.n = n_frames

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Go to frame (0 – {self.n - 1})", classes="dialog-title")
            yield Input(
                placeholder="frame number",
                type="integer",
                validators=[Number(minimum=0, maximum=self.n - 1)],
                id="goto-input",
            )
            yield Label("", id="goto-error", classes="dialog-error")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        v = event.validation_result
        if v is not None and not v.is_valid:
            self.query_one("#goto-error", Label).update(
                f"expected a frame number from 0 to {self.n - 1}"
            )
            return
        try:
            self.dismiss(int(event.value))
        except ValueError:
            self.query_one("#goto-error", Label).update("expected a whole number")

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditScreen(ModalScreen[str | None]):
    """Write a corrected caption; ctrl+s saves it as a review record."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *CANCEL,
        Binding("ctrl+s", "save", "Save", id="dialog-save"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label(self.title_text, classes="dialog-title")
            yield TextArea(self.text, soft_wrap=True, id="edit-text")
            yield Label(
                "ctrl+s save · esc cancel · the provider's answer is kept as it was",
                classes="dialog-hint",
            )
            yield Label("", id="edit-error", classes="dialog-error")

    def action_save(self) -> None:
        text = self.query_one("#edit-text", TextArea).text.strip()
        if not text:
            self.query_one("#edit-error", Label).update("an edit needs some text")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of (value, label) choices."""

    BINDINGS = CANCEL

    def __init__(
        self, title: str, choices: Sequence[tuple[str, str]], current: str | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.choices = list(choices)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(
                *(Option(label, id=value) for value, label in self.choices), id="choice-list"
            )

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ids = [v for v, _ in self.choices]
        if self.current in ids:
            ol.highlighted = ids.index(self.current)
        ol.focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class WeightsScreen(ModalScreen[dict[str, float] | None]):
    """Edit every target's routing weight; enter applies all of them."""

    BINDINGS = CANCEL

    def __init__(self, weights: dict[str, float], note: str = "") -> None:
        super().__init__()
        self.weights = weights
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Routing weights (enter applies, esc cancels)", classes="dialog-title")
            if self.note:
                yield Label(self.note, classes="dialog-hint")
            for i, (tid, w) in enumerate(self.weights.items()):
                yield Label(tid)
                yield Input(
                    f"{w:g}",
                    type="number",
                    validators=[Number(minimum=0)],
                    id=f"weight-{i}",
                )
            yield Label("", id="weights-error", classes="dialog-error")

    @on(Input.Submitted)
    def submit(self) -> None:
        out: dict[str, float] = {}
        for i, tid in enumerate(self.weights):
            inp = self.query_one(f"#weight-{i}", Input)
            try:
                w = float(inp.value)
            except ValueError:
                w = -1.0
            if not w >= 0:
                self.query_one("#weights-error", Label).update(
                    f"{tid}: expected a number >= 0, got {inp.value!r}"
                )
                return
            out[tid] = w
        if not any(out.values()):
            self.query_one("#weights-error", Label).update("at least one weight must be > 0")
            return
        self.dismiss(out)

    def action_cancel(self) -> None:
        self.dismiss(None)
