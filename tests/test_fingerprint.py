"""The cache fingerprint: stable under event noise, different when the scene differs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.events.render import render
from evtui.events.types import EVENT_DTYPE
from evtui.frames.fingerprint import (
    DEFAULT_THRESHOLD,
    FINGERPRINT_BITS,
    FINGERPRINT_BYTES,
    fingerprint,
    fingerprint_bits,
    hamming,
    threshold_bits,
)

W, H = 640, 480


def scene_events(disc_x: float, bar_x: float, seed: int, n: int = 30_000) -> np.ndarray:
    """One 33 ms window: a disc moving right (ON leading edge) and a vertical bar moving
    left (OFF leading edge), as fractions of the width; 5 % background noise."""
    rng = np.random.default_rng(seed)
    n_noise = n // 20
    n_disc = (n - n_noise) // 2
    n_bar = n - n_noise - n_disc
    ang = rng.uniform(0, 2 * np.pi, n_disc)
    r = 0.1 * H + rng.normal(0, 1.0, n_disc)
    dx, dy = disc_x * W + r * np.cos(ang), 0.45 * H + r * np.sin(ang)
    dp = np.cos(ang) > 0
    bx = bar_x * W + rng.normal(0, 1.5, n_bar) + np.where(rng.random(n_bar) < 0.5, 0, 8)
    by = rng.uniform(0.2 * H, 0.8 * H, n_bar)
    bp = bx > bar_x * W + 4
    nx, ny = rng.uniform(0, W, n_noise), rng.uniform(0, H, n_noise)
    x = np.concatenate([dx, bx, nx])
    y = np.concatenate([dy, by, ny])
    p = np.concatenate([dp, bp, rng.random(n_noise) < 0.5])
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 33_000, n))
    order = rng.permutation(n)
    ev["x"] = np.clip(np.rint(x[order]), 0, W - 1)
    ev["y"] = np.clip(np.rint(y[order]), 0, H - 1)
    ev["p"] = p[order]
    return ev


def degrade(ev: np.ndarray, seed: int, *, extra: float = 0.2, jitter: int = 2) -> np.ndarray:
    """The same scene through a worse sensor: 10 % events lost, `extra` more shot noise,
    three hot pixels firing 8 times each, every event moved by up to `jitter` px."""
    rng = np.random.default_rng(seed)
    ev = ev[rng.random(ev.size) > 0.1].copy()
    ev["x"] = np.clip(ev["x"].astype(int) + rng.integers(-jitter, jitter + 1, ev.size), 0, W - 1)
    ev["y"] = np.clip(ev["y"].astype(int) + rng.integers(-jitter, jitter + 1, ev.size), 0, H - 1)
    n = int(extra * ev.size)
    hot = rng.integers(0, W * H, 3).repeat(8)
    noise = np.zeros(n + hot.size, EVENT_DTYPE)
    noise["t"] = rng.integers(0, 33_000, noise.size)
    noise["x"] = np.concatenate([rng.integers(0, W, n), hot % W])
    noise["y"] = np.concatenate([rng.integers(0, H, n), hot // W])
    noise["p"] = rng.integers(0, 2, noise.size)
    out = np.concatenate([ev, noise])
    return out[np.argsort(out["t"], kind="stable")]


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    out = {}
    for method in ("cdframe", "histogram"):
        for seed in range(3):
            ev = scene_events(0.3, 0.7, seed)
            out[f"{method}/a/{seed}"] = render(ev, W, H, method)
            out[f"{method}/a-noisy/{seed}"] = render(degrade(ev, seed + 50), W, H, method)
            out[f"{method}/moved/{seed}"] = render(scene_events(0.55, 0.7, seed + 7), W, H, method)
            flipped = ev.copy()
            flipped["p"] = 1 - flipped["p"]
            out[f"{method}/flipped/{seed}"] = render(flipped, W, H, method)
    return out


def test_shape_and_determinism(frames):
    img = frames["cdframe/a/0"]
    fp = fingerprint(img)
    assert isinstance(fp, bytes) and len(fp) == FINGERPRINT_BYTES == FINGERPRINT_BITS // 8
    assert fingerprint(img.copy()) == fp
    # median thresholding: half of each plane's 64 bits are set
    bits = fingerprint_bits(fp)
    assert bits.shape == (2, 64)
    assert bits[0].sum() == 32


@pytest.mark.parametrize("method", ["cdframe", "histogram"])
def test_noise_jitter_and_hot_pixels_stay_within_threshold(frames, method):
    for seed in range(3):
        clean = fingerprint(frames[f"{method}/a/{seed}"])
        noisy = fingerprint(frames[f"{method}/a-noisy/{seed}"])
        assert hamming(clean, noisy) <= DEFAULT_THRESHOLD, (method, seed)
        # another event sample of the same scene is a near duplicate too
        other = fingerprint(frames[f"{method}/a/{(seed + 1) % 3}"])
        assert hamming(clean, other) <= DEFAULT_THRESHOLD, (method, seed)


@pytest.mark.parametrize("method", ["cdframe", "histogram"])
def test_moved_object_and_reversed_motion_are_far(frames, method):
    for seed in range(3):
        a = fingerprint(frames[f"{method}/a/{seed}"])
        assert hamming(a, fingerprint(frames[f"{method}/moved/{seed}"])) > 2 * DEFAULT_THRESHOLD
        # same edges, opposite polarity: motion the other way round must not match
        assert hamming(a, fingerprint(frames[f"{method}/flipped/{seed}"])) > 2 * DEFAULT_THRESHOLD


def test_grey_equals_its_rgb_replica_and_flat_is_zero(frames):
    grey = frames["histogram/a/0"][:, :, 0].copy()
    assert fingerprint(grey) == fingerprint(np.repeat(grey[:, :, None], 3, axis=2))
    assert fingerprint(np.full((H, W, 3), (30, 37, 52), np.uint8)) == bytes(16)
    assert fingerprint(grey.astype(np.float32)) == fingerprint(grey)


@pytest.mark.parametrize("shape", [(480, 640, 3), (481, 641, 3), (240, 320), (7, 5, 3), (1, 1)])
def test_any_size_works(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    assert len(fingerprint(img)) == FINGERPRINT_BYTES


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 4), np.uint8), np.zeros((0, 5, 3), np.uint8), np.zeros(5, np.uint8)]
)
def test_bad_frames_are_value_errors(bad):
    with pytest.raises(ValueError, match="frame must be"):
        fingerprint(bad)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_hamming_counts_differing_bits(a, b):
    bits_a = np.unpackbits(np.frombuffer(a, np.uint8))
    bits_b = np.unpackbits(np.frombuffer(b, np.uint8))
    assert hamming(a, b) == int(np.count_nonzero(bits_a != bits_b)) == hamming(b, a)
    assert hamming(a, a) == 0


def test_hamming_rejects_mixed_lengths():
    with pytest.raises(ValueError, match="length"):
        hamming(bytes(16), bytes(8))


def test_threshold_fraction_to_bits():
    assert threshold_bits(0) == 0
    assert threshold_bits(0.1) == 13
    assert threshold_bits(1) == FINGERPRINT_BITS
    with pytest.raises(ValueError):
        threshold_bits(1.5)
