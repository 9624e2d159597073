"""Frames encoded per target: right bytes and media type, sizes within every limit, never
upscaled, aspect kept, byte caps met or refused clearly, and an exact pixel hash."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.frames import (
    EncodedImage,
    EncodeSpec,
    downscale_for_retry,
    encode_frame,
    fit_size,
    frame_pixel_hash,
    largest_size_within,
    size_for_short_side,
)

MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "image/webp": b"RIFF"}


def scene(width: int = 640, height: int = 480, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """An RGB frame with structure (gradient, disc, bar) and optional salt noise."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    cv2.circle(img, (width // 3, height // 2), min(width, height) // 4, (255, 255, 255), -1)
    cv2.rectangle(
        img, (width // 2, height // 4), (width // 2 + 20, 3 * height // 4), (0, 200, 0), -1
    )
    if noise:
        rng = np.random.default_rng(seed)
        mask = rng.random((height, width)) < noise
        img[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    return img


def decode(enc: EncodedImage) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(enc.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "not decodable"
    return img


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_formats_media_types_and_decodable(fmt):
    img = scene()
    enc = encode_frame(img, EncodeSpec(formats=(fmt,)))
    assert enc.media_type == f"image/{fmt}"
    assert enc.data.startswith(MAGIC[enc.media_type])
    if fmt == "webp":
        assert enc.data[8:12] == b"WEBP"
    out = decode(enc)
    assert out.shape == (480, 640, 3) and (enc.width, enc.height) == (640, 480)
    assert enc.quality == (None if fmt == "png" else 85)
    # Channel order survives: decoded BGR, back to RGB, is close to the input.
    err = np.abs(cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(int) - img.astype(int)).mean()
    assert err < (0.01 if fmt == "png" else 6)


def test_png_is_lossless_and_red_stays_red():
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    out = decode(encode_frame(img, EncodeSpec(formats=("png",))))
    assert (out[..., 2] == 255).all() and (out[..., :2] == 0).all()  # BGR view of red
    frame = scene(96, 64, noise=0.2)
    back = cv2.cvtColor(
        decode(encode_frame(frame, EncodeSpec(formats=("png",)))), cv2.COLOR_BGR2RGB
    )
    assert np.array_equal(back, frame)


@pytest.mark.parametrize(
    "spec",
    [EncodeSpec(), EncodeSpec(formats=("png",)), EncodeSpec(max_long_edge=200, max_bytes=9000)],
)
def test_a_bgr_frame_gives_the_same_bytes_and_hash_as_its_rgb(spec):
    rgb = scene(320, 240, noise=0.05)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    want = encode_frame(rgb, spec)
    got = encode_frame(bgr, spec, order="bgr")
    assert got == want  # bytes, size, quality and the hash of the RGB pixels
    assert got.pixel_hash == frame_pixel_hash(rgb)
    grey = rgb[..., 1].copy()  # one channel has no order
    assert encode_frame(grey, spec, order="bgr") == encode_frame(grey, spec)


def test_an_unknown_channel_order_is_refused():
    with pytest.raises(ValueError, match="order must be 'rgb' or 'bgr', got 'rbg'"):
        encode_frame(scene(), EncodeSpec(), order="rbg")  # type: ignore[arg-type]


def test_greyscale_frames_encode_as_one_channel():
    grey = scene()[..., 1].copy()
    out = decode(encode_frame(grey, EncodeSpec(formats=("png",))))
    assert out.shape == (480, 640) and np.array_equal(out, grey)


def test_first_format_in_preference_order_is_used():
    enc = encode_frame(scene(), EncodeSpec(formats=("webp", "jpeg")))
    assert enc.media_type == "image/webp"


@pytest.mark.parametrize(
    ("spec", "size"),
    [
        (EncodeSpec(max_long_edge=320), (320, 240)),
        (EncodeSpec(max_pixels=640 * 480 // 4), (320, 240)),
        (EncodeSpec(target_size=(512, 512)), (512, 384)),
        (EncodeSpec(target_size=(1280, 960)), (640, 480)),  # never upscale
        (EncodeSpec(max_long_edge=4000, max_pixels=10**8), (640, 480)),
        (EncodeSpec(target_size=(600, 1000), max_long_edge=500, max_pixels=10**6), (500, 375)),
    ],
)
def test_size_limits(spec, size):
    enc = encode_frame(scene(), spec)
    assert (enc.width, enc.height) == size
    assert decode(enc).shape[:2] == (size[1], size[0])


def test_provider_size_is_hit_exactly():
    # Sizes the providers downscale to (from evtui.providers.images.provider_resize).
    assert fit_size(1920, 1080, EncodeSpec(target_size=(1456, 819))) == (1456, 819)
    assert fit_size(1920, 1080, EncodeSpec(target_size=(1365, 768))) == (1365, 768)
    assert fit_size(1075, 1520, EncodeSpec(target_size=(924, 1307))) == (924, 1307)
    assert fit_size(3840, 2160, EncodeSpec(target_size=(2576, 1449))) == (2576, 1449)


@settings(max_examples=400, deadline=None)
@given(
    w=st.integers(1, 8000),
    h=st.integers(1, 8000),
    long_edge=st.none() | st.integers(1, 9000),
    pixels=st.none() | st.integers(1, 70_000_000),
    target=st.none() | st.tuples(st.integers(1, 9000), st.integers(1, 9000)),
)
def test_fit_size_obeys_limits_never_upscales_keeps_aspect(w, h, long_edge, pixels, target):
    spec = EncodeSpec(max_long_edge=long_edge, max_pixels=pixels, target_size=target)
    fw, fh = fit_size(w, h, spec)
    assert 1 <= fw <= w and 1 <= fh <= h
    if long_edge is not None:
        assert max(fw, fh) <= max(long_edge, 1)
    if pixels is not None and pixels >= max(w / h, h / w):  # a 1-px strip may exceed a tiny cap
        assert fw * fh <= pixels
    if target is not None:
        assert fw <= target[0] and fh <= target[1]
    if (fw, fh) != (w, h):
        # aspect within 1 px on the short side (the long side is exact by construction)
        if w >= h:
            assert abs(fh - fw * h / w) <= 1
        else:
            assert abs(fw - fh * w / h) <= 1


def test_max_bytes_lowers_quality_then_size():
    img = scene(1280, 720, noise=0.3)
    full = encode_frame(img, EncodeSpec())
    cap = len(full.data) // 2
    q_only = encode_frame(img, EncodeSpec(max_bytes=int(len(full.data) * 0.8)))
    assert len(q_only.data) <= len(full.data) * 0.8
    assert q_only.quality < 85 and (q_only.width, q_only.height) == (1280, 720)
    small = encode_frame(img, EncodeSpec(max_bytes=cap // 4))
    assert len(small.data) <= cap // 4
    assert small.quality == 40 and small.width < 1280
    assert abs(small.height - small.width * 720 / 1280) <= 1
    decode(small)


def test_max_bytes_png_shrinks_size():
    img = scene(640, 480, noise=0.5)
    full = encode_frame(img, EncodeSpec(formats=("png",)))
    enc = encode_frame(img, EncodeSpec(formats=("png",), max_bytes=len(full.data) // 3))
    assert len(enc.data) <= len(full.data) // 3
    assert enc.width < 640 and enc.quality is None


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_impossible_byte_cap_is_a_clear_error(fmt):
    with pytest.raises(
        ValueError, match=rf"cannot encode a 640x480 frame as {fmt} within 60 bytes"
    ):
        encode_frame(scene(noise=0.2), EncodeSpec(formats=(fmt,), max_bytes=60))


def test_pixel_hash_exact():
    a = scene()
    h = frame_pixel_hash(a)
    assert len(h) == 32 and int(h, 16) >= 0
    assert frame_pixel_hash(a.copy()) == h
    # A non-contiguous view with the same pixels hashes the same.
    wide = np.zeros((480, 1280, 3), np.uint8)
    wide[:, ::2] = a
    assert frame_pixel_hash(wide[:, ::2]) == h
    b = a.copy()
    b[479, 639, 2] ^= 1  # one bit of one pixel
    assert frame_pixel_hash(b) != h
    # Same bytes, another shape: another frame.
    assert frame_pixel_hash(a.reshape(640, 480, 3)) != h
    # The encoded image carries the hash of the rendered pixels, whatever the encoding.
    assert encode_frame(a, EncodeSpec(max_long_edge=100)).pixel_hash == h
    assert encode_frame(a, EncodeSpec(formats=("png",))).pixel_hash == h
    assert encode_frame(a, EncodeSpec(), pixel_hash="given").pixel_hash == "given"


def test_downscale_for_retry_halves_pixels_and_bytes():
    img = scene(1280, 720, noise=0.1)
    spec = EncodeSpec(target_size=(1280, 720))
    sent = encode_frame(img, spec)
    retry = downscale_for_retry(spec, sent)
    assert retry.max_pixels == 1280 * 720 // 2
    assert retry.max_bytes == len(sent.data) // 2
    again = encode_frame(img, retry)
    assert again.width * again.height <= 1280 * 720 // 2
    assert again.width == math.floor(1280 / math.sqrt(2))
    assert len(again.data) <= len(sent.data) // 2
    # Without the sent image the spec's own limits are halved.
    assert downscale_for_retry(EncodeSpec(max_long_edge=1000)).max_pixels == 500_000
    assert downscale_for_retry(EncodeSpec(max_pixels=10, max_bytes=99)).max_bytes == 99
    with pytest.raises(ValueError, match="no size limit"):
        downscale_for_retry(EncodeSpec())


def test_size_for_short_side():
    assert size_for_short_side(1920, 1080, 480) == (854, 480)
    assert size_for_short_side(1080, 1920, 480) == (480, 854)
    assert size_for_short_side(640, 480, 720) == (640, 480)


def test_largest_size_within_budget():
    def claude(w: int, h: int) -> int:  # 28-px patches, no cap
        return math.ceil(w / 28) * math.ceil(h / 28)

    w, h = largest_size_within(1920, 1080, claude, 1000)
    assert claude(w, h) <= 1000
    # One more pixel on the long side (same aspect) would exceed the budget.
    bigger = fit_size(1920, 1080, EncodeSpec(max_long_edge=w + 1))
    assert claude(*bigger) > 1000
    assert largest_size_within(640, 480, claude, 10**6) == (640, 480)
    with pytest.raises(ValueError, match="no downscale"):
        largest_size_within(640, 480, lambda w, h: 1120, 500)  # a fixed per-image cost


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"formats": ()}, "formats"),
        ({"formats": ("gif",)}, "formats"),
        ({"quality": 101}, "quality"),
        ({"quality": 30, "min_quality": 40}, "min_quality"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"target_size": (0, 10)}, "target_size"),
    ],
)
def test_bad_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncodeSpec(**kwargs)


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)],
)
def test_bad_frames(image):
    with pytest.raises(ValueError, match="frame"):
        encode_frame(image, EncodeSpec())


def test_spec_is_hashable_and_picklable():
    import pickle

    spec = EncodeSpec(formats=("jpeg", "png"), target_size=(1456, 819), max_bytes=3_750_000)
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert (
        len(
            {
                spec,
                EncodeSpec(formats=("jpeg", "png"), target_size=(1456, 819), max_bytes=3_750_000),
            }
        )
        == 1
    )


def test_spec_from_config_lists_is_still_hashable():
    spec = EncodeSpec(formats=["png", "jpeg"], target_size=[320, 240])
    assert spec == EncodeSpec(formats=("png", "jpeg"), target_size=(320, 240))
    assert hash(spec) == hash(EncodeSpec(formats=("png", "jpeg"), target_size=(320, 240)))
