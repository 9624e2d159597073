"""Image-token formulas against the reference's worked numbers (providers.md §5), the
size each provider really uses, the model catalogue, and the calibrator."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.providers import images, models
from evtui.providers.images import (
    RULES,
    ImageTokenCalibrator,
    estimate_image_tokens,
    provider_resize,
)

SIZES = [(640, 480), (1280, 720), (1920, 1080), (3840, 2160)]

# Reference §5.4, one row per column of the table: (model, detail, rules override), tokens.
WORKED = [
    (("gpt-4o", None, None), [425, 1105, 1105, 1105]),
    (("gpt-4.1", None, None), [425, 1105, 1105, 1105]),
    (("gpt-4o-mini", None, None), [14167, 36835, 36835, 36835]),
    (("gpt-4.1-mini", None, "openai-patch-4.1-mini-2025"), [487, 1491, 2443, 2443]),
    (("gpt-4.1-mini", None, None), [487, 1491, 3305, 3733]),  # the "new rule" numbers
    (("gpt-5.4", "high", None), [360, 1104, 2448, 2765]),
    (("claude-haiku-4-5", None, None), [414, 1196, 1560, 1560]),
    (("claude-sonnet-4-6", None, None), [414, 1196, 1560, 1560]),
    (("claude-opus-4-7", None, None), [414, 1196, 2691, 4784]),
    (("gemini-2.5-flash", None, None), [1032, 1548, 1548, 1548]),
    (("gemini-3-pro-preview", "high", None), [1120, 1120, 1120, 1120]),
]


@pytest.mark.parametrize(("args", "expected"), WORKED, ids=[f"{a[0]}-{a[2]}" for a, _ in WORKED])
def test_worked_table(args, expected):
    model, detail, rules = args
    got = [estimate_image_tokens(model, w, h, detail, rules=rules) for w, h in SIZES]
    assert got == expected


def test_anthropic_documented_resizes():
    assert provider_resize("claude-sonnet-4-5", 1075, 1520) == (924, 1307)
    assert estimate_image_tokens("claude-sonnet-4-5", 1075, 1520) == 1551
    assert provider_resize("claude-haiku-4-5-20251001", 1920, 1080) == (1456, 819)
    assert estimate_image_tokens("claude-haiku-4-5-20251001", 1920, 1080) == 1560
    assert provider_resize("claude-opus-4-8", 3840, 2160) == (2576, 1449)
    assert estimate_image_tokens("claude-opus-5", 3840, 2160) == 4784


def test_openai_detail_low_and_tile_resizes():
    assert estimate_image_tokens("gpt-4o", 4000, 3000, "low") == 85
    assert estimate_image_tokens("gpt-4o-mini", 4000, 3000, "low") == 2833
    assert estimate_image_tokens("gpt-5", 640, 480) == 70 + 2 * 140
    assert estimate_image_tokens("o3", 640, 480) == 75 + 2 * 150
    # OpenAI's own example: 2048×4096 → fit 1024×2048 → short side 768 → 768×1536, 6 tiles.
    assert provider_resize("gpt-4o", 2048, 4096) == (768, 1536)
    assert estimate_image_tokens("gpt-4o", 2048, 4096) == 85 + 6 * 170
    assert provider_resize("gpt-4o", 1920, 1080) == (1365, 768)
    assert provider_resize("gpt-4o", 1920, 1080, "low") == (512, 288)


def test_openai_patch_shrink_rule():
    # 1,536-patch rule at 1920×1080: s = √(1024·1536/(1920·1080)), nudged to 29 patch rows.
    assert provider_resize("gpt-4.1-nano", 1920, 1080) == (1649, 928)
    assert estimate_image_tokens("gpt-4.1-nano", 1920, 1080) == math.ceil(52 * 29 * 2.46)
    assert estimate_image_tokens("o4-mini", 640, 480) == math.ceil(300 * 1.72)
    assert estimate_image_tokens("gpt-5-mini", 640, 480) == 360
    assert estimate_image_tokens("gpt-5-nano", 640, 480) == 450


def test_openai_patch_details_per_model():
    # gpt-5.4: auto = high; low = 2048 px & 6,144 patches, so low costs more than high here.
    high = estimate_image_tokens("gpt-5.4", 3840, 2160, "high")
    assert estimate_image_tokens("gpt-5.4-mini", 3840, 2160) == high == 2765
    assert estimate_image_tokens("gpt-5.4", 3840, 2160, "low") == math.ceil(64 * 36 * 1.2)
    # original: 6000 px & 10,000 patches: 3840×2160 fits → 120·68 patches.
    assert estimate_image_tokens("gpt-5.4", 3840, 2160, "original") == math.ceil(120 * 68 * 1.2)
    # gpt-5.5: auto = original; low fits 512×512 → 512×288 → 16·9 patches.
    assert estimate_image_tokens("gpt-5.5", 3840, 2160) == math.ceil(120 * 68 * 1.2)
    assert estimate_image_tokens("gpt-5.5", 3840, 2160, "low") == math.ceil(16 * 9 * 1.2)
    # gpt-5.6: original/auto has no patch budget.
    assert estimate_image_tokens("gpt-5.6-sol", 8000, 6000) == math.ceil(250 * 188 * 1.2)
    assert estimate_image_tokens("gpt-5.6-luna", 8000, 6000, "high") <= math.ceil(2500 * 1.2)


def test_gemini_rules():
    assert estimate_image_tokens("gemini-2.5-flash", 384, 384) == 258
    assert estimate_image_tokens("gemini-2.5-flash", 385, 384) == 258 * 4  # crop 256
    assert estimate_image_tokens("gemini-2.5-pro", 960, 540) == 1548  # Google's example
    assert estimate_image_tokens("gemini-2.5-flash", 960, 540, "MEDIA_RESOLUTION_LOW") == 64
    assert estimate_image_tokens("gemini-2.5-flash", 960, 540, "medium") == 256
    for detail, tokens in [("low", 280), ("medium", 560), ("high", 1120), ("ultra_high", 2240)]:
        assert estimate_image_tokens("gemini-3.5-flash", 640, 480, detail) == tokens
    assert estimate_image_tokens("gemini-3-pro", 64, 64) == 1120  # default = HIGH
    # 3840×2160: crops of 1440 px would be shrunk to 768 anyway.
    assert provider_resize("gemini-2.5-flash", 3840, 2160) == (2048, 1152)
    assert provider_resize("gemini-3-flash", 3840, 2160) == (3840, 2160)


def test_unknown_model_is_conservative():
    for w, h in SIZES:
        got = estimate_image_tokens("llava-next-34b", w, h)
        assert got >= math.ceil(w / 28) * math.ceil(h / 28)
        assert got >= estimate_image_tokens("gpt-4o", w, h)
        assert got >= estimate_image_tokens("gemini-2.5-flash", w, h)
        assert got >= estimate_image_tokens("claude-opus-4-7", w, h)
        assert provider_resize("llava-next-34b", w, h) == (w, h)
    # Config can map a local model onto a known family.
    assert estimate_image_tokens("qwen-vl", 1920, 1080, rules="anthropic-standard") == 1560
    with pytest.raises(ValueError, match="unknown image rules 'nope'"):
        estimate_image_tokens("qwen-vl", 10, 10, rules="nope")


def test_bad_sizes_are_value_errors():
    with pytest.raises(ValueError, match="positive"):
        estimate_image_tokens("gpt-4o", 0, 10)
    with pytest.raises(ValueError, match="positive"):
        provider_resize("gpt-4o", 10, -1)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.sampled_from(sorted(RULES)),
    detail=st.sampled_from([None, "low", "high", "auto", "original", "medium"]),
    w=st.integers(1, 9000),
    h=st.integers(1, 9000),
)
def test_provider_resize_never_upscales_nor_costs_more(rules, detail, w, h):
    """Sending the provider's own size never costs more, and resizing it again is a no-op."""
    rw, rh = provider_resize("x", w, h, detail, rules=rules)
    assert 1 <= rw <= w and 1 <= rh <= h
    after = estimate_image_tokens("x", rw, rh, detail, rules=rules)
    assert after <= estimate_image_tokens("x", w, h, detail, rules=rules)
    if rules != "gemini-2.5":  # the Gemini 2.5 cap is inferred: it may save a tile
        assert after == estimate_image_tokens("x", w, h, detail, rules=rules)
        assert provider_resize("x", rw, rh, detail, rules=rules) == (rw, rh)


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 12000), h=st.integers(1, 12000))
def test_claude_resize_respects_both_limits(w, h):
    for rules, edge, budget in [
        ("anthropic-standard", 1568, 1568),
        ("anthropic-high-res", 2576, 4784),
    ]:
        rw, rh = provider_resize("x", w, h, rules=rules)
        assert math.ceil(rw / 28) * 28 <= edge and math.ceil(rh / 28) * 28 <= edge
        assert math.ceil(rw / 28) * math.ceil(rh / 28) <= budget
        if (rw, rh) != (w, h):  # downscaled: aspect kept within rounding of the short side
            if w >= h:
                assert abs(rh - rw * h / w) <= 1
            else:
                assert abs(rw - rh * w / h) <= 1


# --------------------------------------------------------------------------- catalogue


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "openai-tile-4o"),
        ("gpt-4o-mini-2024-07-18", "openai-tile-4o-mini"),
        ("openai/gpt-4.1-mini", "openai-patch-4.1-mini"),
        ("gpt-5.4-nano", "openai-patch-5.4"),
        ("gpt-5-mini-2025-08-07", "openai-patch-5-mini"),
        ("gpt-5", "openai-tile-5"),
        ("gpt-5.2", "default"),  # '.' is not a version boundary: unknown, not gpt-5
        ("o1-pro", "openai-tile-o"),
        ("claude-haiku-4-5-20251001", "anthropic-standard"),
        ("claude-sonnet-5-5", "anthropic-standard"),
        ("claude-opus-4-6", "anthropic-standard"),
        ("claude-opus-4-7", "anthropic-high-res"),
        ("claude-haiku-5-5", "anthropic-high-res"),  # tier unpublished: the upper bound
        ("models/gemini-2.5-flash-lite", "gemini-2.5"),
        ("gemini-3.8-flash", "gemini-3"),
        ("gemini-3-pro-preview", "gemini-3"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "default"),
    ],
)
def test_catalogue_families(model, family):
    assert models.lookup(model).image_rules == family


def test_catalogue_limits_and_protocol_defaults():
    claude = models.lookup("claude-haiku-4-5")
    assert claude.protocol == "anthropic"
    assert claude.max_image_side == 8000
    assert claude.max_image_bytes * 4 / 3 <= 5_000_000  # fits Bedrock/Vertex once base64'd
    assert "image/gif" not in models.lookup("gemini-2.5-flash").media_types
    local = models.lookup("llava:13b", protocol="openai-compatible")
    assert not local.known and local.image_rules == "default"
    assert models.lookup("claude-next", protocol="anthropic").image_rules == "anthropic-high-res"
    # A known model behind a gateway keeps its image rules, takes the gateway's limits.
    gw = models.lookup("gpt-4o", protocol="openai-compatible")
    assert gw.image_rules == "openai-tile-4o" and gw.protocol == "openai-compatible"


def test_resolve_model_id_longest_prefix_at_boundary():
    known = ["gpt-4o", "gpt-4o-mini", "o1"]
    assert models.resolve_model_id("gpt-4o-mini-2024-07-18", known) == "gpt-4o-mini"
    assert models.resolve_model_id("GPT-4o@2024", known) == "gpt-4o"
    assert models.resolve_model_id("o1x", known) is None
    assert models.resolve_model_id("gpt-4", known) is None


# --------------------------------------------------------------------------- calibration


def test_calibrator_exact_size_from_reported_tokens():
    cal = ImageTokenCalibrator(min_observations=3)
    assert cal.estimate("gemini-2.5-flash", 640, 480) == 1032
    cal.observe("gemini-2.5-flash", 640, 480, 1290)  # Gemini's IMAGE modality count
    assert cal.estimate("gemini-2.5-flash", 640, 480) == 1290
    # Another size of the same model: one ratio is not enough to correct the formula yet.
    assert cal.estimate("gemini-2.5-flash", 1280, 720) == 1548


def test_calibrator_model_ratio_after_n_observations():
    cal = ImageTokenCalibrator(min_observations=3)
    for w, h in [(640, 480), (1280, 720), (800, 600)]:
        base = estimate_image_tokens("gpt-4.1-mini", w, h)
        cal.observe("gpt-4.1-mini", w, h, round(base * 1.5))
    assert cal.ratio("gpt-4.1-mini") == pytest.approx(1.5, rel=0.01)
    base = estimate_image_tokens("gpt-4.1-mini", 1920, 1080)
    assert cal.estimate("gpt-4.1-mini", 1920, 1080) == pytest.approx(base * 1.5, rel=0.01)
    assert cal.ratio("gpt-4o") is None
    assert set(cal.snapshot()) == {"gpt-4.1-mini"}


def test_calibrator_derived_observations_need_n_and_reject_nonsense():
    cal = ImageTokenCalibrator(min_observations=2)
    text = images.estimate_text_tokens("Describe the frame.")
    cal.observe_input("claude-haiku-4-5", 640, 480, 500 + text, text)
    assert cal.estimate("claude-haiku-4-5", 640, 480) == 414  # one derived value: not yet
    cal.observe_input("claude-haiku-4-5", 640, 480, 520 + text, text)
    assert cal.estimate("claude-haiku-4-5", 640, 480) == 510  # median of 500 and 520
    cal.observe_input("claude-haiku-4-5", 640, 480, 3, text)  # negative image tokens
    cal.observe("claude-haiku-4-5", 640, 480, 10**7)  # absurd ratio
    assert cal.estimate("claude-haiku-4-5", 640, 480) == 510
    with pytest.raises(ValueError):
        ImageTokenCalibrator(min_observations=0)


def test_calibrator_uses_configured_rules():
    cal = ImageTokenCalibrator(rules={"qwen-vl": "anthropic-standard"})
    assert cal.estimate("qwen-vl", 1920, 1080) == 1560
    assert cal.estimate("other-local", 1920, 1080) == estimate_image_tokens("x", 1920, 1080)
