"""Readers and writers for every event format, chosen from the file's content."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from evtui.events.errors import RecordingError, UnknownFormat
from evtui.events.io.base import DEFAULT_BLOCK_BYTES, EventReader, EventWriter, RecordingInfo

# format -> (module, reader class, writer class or None). Sniffing runs in this order:
# unambiguous magic bytes first, then the `%` headers of RAW and DAT, text last.
_FORMATS: dict[str, tuple[str, str, str | None]] = {
    "aedat4": ("evtui.events.io.aedat4", "Aedat4Reader", "Aedat4Writer"),
    "hdf5": ("evtui.events.io.hdf5", "Hdf5Reader", "Hdf5Writer"),
    "npy": ("evtui.events.io.numpy_files", "NpyReader", "NpyWriter"),
    "npz": ("evtui.events.io.numpy_files", "NpzReader", "NpzWriter"),
    "evt3": ("evtui.events.io.evt3", "Evt3Reader", "Evt3Writer"),
    "evt2": ("evtui.events.io.evt2", "Evt2Reader", "Evt2Writer"),
    "dat": ("evtui.events.io.dat", "DatReader", "DatWriter"),
    "text": ("evtui.events.io.text", "TextReader", "TextWriter"),
}

SNIFF_BYTES = 64 * 1024

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "EventReader",
    "EventWriter",
    "RecordingInfo",
    "detect_format",
    "open_recording",
    "open_writer",
    "reader_class",
    "writable_formats",
    "writer_class",
]


def reader_class(fmt: str) -> type[EventReader]:
    module, reader, _ = _FORMATS[fmt]
    return getattr(importlib.import_module(module), reader)


def writer_class(fmt: str) -> type[EventWriter]:
    module, _, writer = _FORMATS[fmt]
    if writer is None:
        raise KeyError(fmt)
    return getattr(importlib.import_module(module), writer)


def readable_formats() -> list[str]:
    return list(_FORMATS)


def writable_formats() -> list[str]:
    return [f for f, (_, _, w) in _FORMATS.items() if w is not None]


def detect_format(path: str | Path) -> str:
    """The format of a file from its first bytes, never from its name alone."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise RecordingError(path, "no such file") from None
    except IsADirectoryError:
        raise RecordingError(path, "is a directory, expected an event recording") from None
    except OSError as e:
        raise RecordingError(path, f"cannot read: {e.strerror or e}") from None
    if not head:
        raise UnknownFormat(path, "file is empty", 0)
    for fmt in _FORMATS:
        if reader_class(fmt).sniff(head):
            return fmt
    raise UnknownFormat(
        path,
        "not a recognised event recording (expected EVT2/EVT3 RAW, DAT, AEDAT4, HDF5, "
        f"npy/npz or text; first bytes {head[:8]!r})",
        0,
    )


def format_for_output(path: str | Path, fmt: str | None = None) -> str:
    """The writer format for an output path: explicit, else from its extension."""
    if fmt:
        if fmt not in writable_formats():
            raise RecordingError(
                path, f"cannot write format '{fmt}' (writable: {', '.join(writable_formats())})"
            )
        return fmt
    name = Path(path).name.lower()
    for f in writable_formats():
        if any(name.endswith(ext) for ext in writer_class(f).extensions):
            return f
    raise RecordingError(
        path,
        "cannot tell the output format from the extension; pass --format "
        f"({', '.join(writable_formats())})",
    )


def open_recording(
    path: str | Path,
    *,
    format: str | None = None,
    geometry: tuple[int, int] | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> EventReader:
    """Open a recording for streaming; the format comes from its content unless given."""
    fmt = format or detect_format(path)
    if fmt not in _FORMATS:
        raise RecordingError(path, f"unknown format '{fmt}' (known: {', '.join(_FORMATS)})")
    return reader_class(fmt)(path, geometry=geometry, block_bytes=block_bytes)


def open_writer(
    path: str | Path, width: int, height: int, *, format: str | None = None, **options: Any
) -> EventWriter:
    fmt = format_for_output(path, format)
    return writer_class(fmt)(path, width, height, **options)
