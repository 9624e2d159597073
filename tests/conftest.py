"""Shared fixtures: where the real recordings are, and a scratch directory."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
SHARED_REAL = ROOT.parent / "shared" / "real"


@pytest.fixture
def real_file():
    """Path to a real recording in ../shared/real; skips the test when it is absent."""

    def get(name: str) -> Path:
        p = SHARED_REAL / name
        if not p.is_file():
            pytest.skip(f"{p} not present (../shared is beside the checkout only in dev and CI)")
        return p

    return get


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache: each gets its own."""
    monkeypatch.setenv("EVTUI_CACHE_DIR", str(tmp_path / "evtui-cache"))
