"""API keys never appear unmasked: the masking functions, and a scan of the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from evtui.providers.secrets import mask_key, mask_secrets

ROOT = Path(__file__).resolve().parents[1]
# Built at run time so that this file itself holds no key-shaped string.
FAKE = "sk-" + "proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"
REAL_SHAPES = re.compile(
    r"(sk-ant-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,})"
)


def test_mask_key_keeps_only_a_hint():
    masked = mask_key(FAKE)
    assert FAKE not in masked and masked.endswith(FAKE[-4:]) and len(masked) < 10
    assert mask_key("short") == "…"
    assert mask_key("") == ""


def test_mask_secrets_hides_known_and_key_shaped_strings():
    custom = "my-gateway-token-123456"
    text = f"401 for key {FAKE} and {custom}; body echoed Bearer {FAKE}"
    out = mask_secrets(text, [custom])
    assert FAKE not in out and custom not in out
    assert "401 for key" in out
    google = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4o5p"
    assert google not in mask_secrets(f"key={google}")


def test_no_key_shaped_string_is_tracked():
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    hits = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue
        text = data.decode("utf-8", "replace")
        hits.extend(f"{name.decode()}: {m.group(0)[:8]}…" for m in REAL_SHAPES.finditer(text))
    assert not hits, hits
