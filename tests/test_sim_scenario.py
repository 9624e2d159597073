"""Scenario files: what they mean, and errors that name file, line, key path and expectation."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from evtui.sim import FaultSpec, LatencySpec, Scenario, ScenarioError, load_scenario
from evtui.sim.scenario import parse_duration, parse_scenario

EXAMPLE = """\
providers:
  anthropic: {rpm: 50, tpm: 40000, latency_ms: {dist: lognormal, median: 900, p95: 2500}}
  openai: {rpm: 500, tpm: 200000, keys: [sk-test-a, sk-test-b]}
faults:
  - {provider: anthropic, kind: overloaded, rate: 0.05, from: 2m, to: 4m}
  - {provider: openai, kind: outage, from: 5m, duration: 60s}
  - {provider: gemini, kind: rate_limited, rate: 0.1, retry_after: 2s}
"""


def test_the_documented_example_loads(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(EXAMPLE)
    sc = load_scenario(path)
    assert sc.providers["anthropic"].rpm == 50
    assert sc.providers["anthropic"].latency_ms.dist == "lognormal"
    assert sc.providers["openai"].keys == ["sk-test-a", "sk-test-b"]
    over, outage, limited = sc.faults
    assert (over.start, over.end, over.rate) == (120.0, 240.0, 0.05)
    assert (outage.start, outage.end) == (300.0, 360.0)
    assert limited.start == 0.0 and math.isinf(limited.end) and limited.retry_after == 2.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("1.5m", 90.0), ("1h", 3600.0), ("7", 7.0), (3, 3.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_empty_file_is_the_default_scenario(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_scenario(path) == Scenario()


def test_every_problem_is_reported_with_its_line_and_key_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "seed: 3\n"
        "providers:\n"
        "  anthropic: {rpm: 50, tpm: -4}\n"  # line 3
        "  opneai: {rpm: 500}\n"  # line 4
        "  openai:\n"
        "    rpm: 10\n"
        "    colour: red\n"  # line 7
        "  gemini:\n"
        "    latency_ms: {dist: lognormal, median: 900}\n"  # line 9
        "faults:\n"
        "  - {provider: anthropic, kind: overloaded, rate: 1.5}\n"  # line 11
        "  - {provider: openai, kind: outage, from: 5x}\n"  # line 12
        "  - {provider: gemini, kind: rate_limit}\n"  # line 13
        "  - {kind: hang}\n"  # line 14
    )
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    problems = exc.value.problems
    expected = [
        (":3:", "providers.anthropic.tpm", "greater than 0"),
        (":4:", "providers.opneai", "'openai'"),
        (":7:", "providers.openai.colour", "unknown key"),
        (":9:", "providers.gemini.latency_ms", "needs median and p95"),
        (":11:", "faults[0].rate", "less than or equal to 1"),
        (":12:", "faults[1].from", "expected a duration"),
        (":13:", "faults[2].kind", "'rate_limited'"),
        (":14:", "faults[3].provider", "required key missing"),
    ]
    assert len(problems) == len(expected), problems
    for problem, (line, key, what) in zip(problems, expected, strict=True):
        assert problem.startswith(str(path) + line), problem
        assert f" {key}: " in problem and what in problem, problem
    assert str(path) in str(exc.value)


def test_cross_field_rules_are_checked():
    text = (
        "faults:\n"
        "  - {provider: openai, kind: overloaded, from: 2m, to: 1m}\n"
        "  - {provider: openai, kind: hang, to: 3m, duration: 1m}\n"
        "  - {provider: openai, kind: outage, model: gpt-4o}\n"
        "  - {provider: openai, kind: rate_limited, status: 500}\n"
        "  - {provider: openai, kind: quota_exhausted, retry_after: 1s}\n"
    )
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "s.yaml")
    p = exc.value.problems
    assert len(p) == 5
    assert p[0].startswith("s.yaml:2:") and "'to' (60s) must be after 'from' (120s)" in p[0]
    assert p[1].startswith("s.yaml:3:") and "either 'to' or 'duration'" in p[1]
    assert "drop 'model'" in p[2]
    assert "'status' applies only to kind server_error" in p[3]
    assert "'retry_after' applies only" in p[4]


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(ScenarioError) as exc:
        parse_scenario("providers:\n  openai: {rpm: 5\nfaults: []\n", "broken.yaml")
    assert exc.value.problems[0].startswith("broken.yaml:3:")
    assert "not valid YAML" in exc.value.problems[0]


def test_top_level_must_be_a_mapping():
    with pytest.raises(ScenarioError, match=r"x.yaml:1: expected a mapping"):
        parse_scenario("- 1\n- 2\n", "x.yaml")


def test_keys_are_masked_in_error_messages():
    key = "sk-" + "proj-abcdefghijklmnopqrstuvwxyz0123"
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(f"providers:\n  openai: {{keys: [{key}], rpm: {key}}}\n", "k.yaml")
    assert key not in str(exc.value)
    assert "0123" in str(exc.value)  # masked form still tells keys apart


def test_with_limits_sets_every_provider_and_keeps_the_rest():
    sc = parse_scenario(EXAMPLE).with_limits(rpm=7, tpm=900)
    for name in ("openai", "anthropic", "gemini", "compat"):
        assert sc.provider(name).rpm == 7 and sc.provider(name).tpm == 900
    assert sc.providers["openai"].keys == ["sk-test-a", "sk-test-b"]
    assert len(sc.faults) == 3


def test_faults_can_be_built_in_code_with_from_or_start():
    a = FaultSpec(provider="openai", kind="outage", start=10, duration=5)
    b = FaultSpec.model_validate({"provider": "openai", "kind": "outage", "from": "10s", "to": 15})
    assert (a.start, a.end) == (b.start, b.end) == (10.0, 15.0)


def test_latency_draws_are_deterministic_for_a_seed():
    spec = LatencySpec(dist="lognormal", median=900, p95=2500)
    first = spec.sampler(random.Random(7))
    second = spec.sampler(random.Random(7))
    other = spec.sampler(random.Random(8))
    a = [first() for _ in range(50)]
    assert a == [second() for _ in range(50)]
    assert a != [other() for _ in range(50)]


def test_lognormal_latency_has_the_requested_median_and_p95():
    draw = LatencySpec(dist="lognormal", median=900, p95=2500).sampler(random.Random(1))
    xs = sorted(draw() for _ in range(20_000))
    assert statistics.median(xs) == pytest.approx(0.9, rel=0.05)
    assert xs[int(0.95 * len(xs))] == pytest.approx(2.5, rel=0.08)


def test_fixed_zero_latency_means_no_sleep_at_all():
    assert LatencySpec(dist="fixed", value=0).sampler(random.Random(0)) is None
    draw = LatencySpec(dist="uniform", min=10, max=20).sampler(random.Random(0))
    assert all(0.010 <= draw() <= 0.020 for _ in range(100))
