"""Sensor sizes: from headers, from plugin/system ids, or inferred from the data."""

from __future__ import annotations

# (width, height) of sensors people record with; inference picks the smallest by area
# that contains the observed extent.
KNOWN_SENSORS: tuple[tuple[str, int, int], ...] = (
    ("DVS128", 128, 128),
    ("DAVIS240", 240, 180),
    ("ATIS Gen1", 304, 240),
    ("GenX320", 320, 320),
    ("DVXplorer Lite", 320, 240),
    ("DAVIS346", 346, 260),
    ("Gen3 VGA / DVXplorer", 640, 480),
    ("Gen4 HD / IMX636", 1280, 720),
    ("Samsung Gen4", 1280, 960),
)

# OpenEB maps plugin names and system ids to a sensor when the header has no geometry.
_PLUGIN_HINTS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("gen41", (1280, 720)),
    ("imx636", (1280, 720)),
    ("gen4", (1280, 720)),
    ("genx320", (320, 320)),
    ("gen31", (640, 480)),
    ("gen3", (640, 480)),
    ("atis", (304, 240)),
)
_SYSTEM_ID_HINTS: dict[int, tuple[int, int]] = {
    # Prophesee system ids seen in RAW headers (OpenEB psee_raw_file_header / device ids).
    28: (640, 480),  # Gen3.1 EVK2
    30: (640, 480),
    31: (640, 480),  # Gen3 EVK1
    35: (640, 480),
    48: (1280, 720),  # Gen4.1 EVK3 HD
    49: (1280, 720),
    50: (1280, 720),  # IMX636 EVK4
}


def geometry_from_hints(plugin: str | None, system_id: str | int | None) -> tuple[int, int] | None:
    """Sensor size from a RAW header's plugin name or system id, as OpenEB does."""
    if plugin:
        name = plugin.lower()
        for key, size in _PLUGIN_HINTS:
            if key in name:
                return size
    if system_id is not None:
        try:
            return _SYSTEM_ID_HINTS.get(int(str(system_id).strip()))
        except ValueError:
            return None
    return None


def infer_geometry(max_x: int, max_y: int) -> tuple[int, int]:
    """Smallest known sensor (by area) holding (max_x, max_y); else the extent rounded up to 16."""
    fits = [(w * h, w, h) for _name, w, h in KNOWN_SENSORS if max_x < w and max_y < h]
    if fits:
        _, w, h = min(fits)
        return w, h
    return ((max_x // 16) + 1) * 16, ((max_y // 16) + 1) * 16
