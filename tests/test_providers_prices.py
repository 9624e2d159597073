"""The shipped price table (reference §5.5), cost with each provider's cache accounting
normalised, batch discount, long-context tiers, aliases and config overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evtui.providers.prices import PriceTable, UnknownModel, shipped_as_of
from evtui.providers.types import Usage

DATA = Path(__file__).resolve().parents[1] / "evtui" / "providers" / "data" / "prices.json"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


# (model, input, cached input, output) from the reference table.
LIST = [
    ("gpt-4o", 2.50, 1.25, 10.00),
    ("gpt-4o-mini", 0.15, 0.075, 0.60),
    ("gpt-4.1", 2.00, 0.50, 8.00),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40),
    ("claude-sonnet-4-5", 3.00, 0.30, 15.00),
    ("claude-sonnet-4-6", 3.00, 0.30, 15.00),
    ("claude-sonnet-5", 2.00, 0.20, 10.00),
    ("claude-sonnet-5-5", 2.00, 0.10, 10.00),
    ("claude-haiku-4-5", 1.00, 0.10, 5.00),
    ("claude-haiku-5-5", 0.10, 0.01, 0.50),
    ("claude-3-5-haiku", 0.80, 0.08, 4.00),
    ("gemini-2.5-pro", 1.25, 0.125, 10.00),
    ("gemini-2.5-flash", 0.30, 0.03, 2.50),
    ("gemini-2.5-flash-lite", 0.10, 0.10, 0.40),  # no cached price listed: charged as input
]


@pytest.mark.parametrize(("model", "p_in", "p_cached", "p_out"), LIST)
def test_list_prices(table, model, p_in, p_cached, p_out):
    p = table.price(model)
    assert (p.input, p.cached_input, p.output) == (p_in, p_cached, p_out)
    assert p.batch_discount == 0.5
    assert p.source


def test_data_file_is_dated_and_sourced():
    raw = json.loads(DATA.read_text())
    assert shipped_as_of() == raw["_as_of"] == "2026-11-12"
    assert "§5.5" in raw["_source"]
    assert all(entry.get("source") for entry in raw["models"].values())


def test_openai_cost_cached_tokens_normalised(table):
    # OpenAI reports prompt_tokens=1000 including cached_tokens=400; the adapter gives
    # Usage(input=600, cached=400). 600·2.50 + 400·1.25 + 100·10.00 per 1M.
    usage = Usage(input_tokens=600, cached_input_tokens=400, output_tokens=100)
    assert table.cost_usd("gpt-4o", usage) == pytest.approx(0.003)
    assert table.cost_usd("gpt-4o", usage, batch=True) == pytest.approx(0.0015)


def test_anthropic_cost_reads_and_writes(table):
    # Anthropic: input_tokens excludes both cache fields already.
    usage = Usage(
        input_tokens=1000, cached_input_tokens=2000, cache_write_tokens=3000, output_tokens=200
    )
    expected = (1000 * 1.00 + 2000 * 0.10 + 3000 * 1.25 + 200 * 5.00) / 1e6
    assert table.cost_usd("claude-haiku-4-5-20251001", usage) == pytest.approx(expected)
    assert table.price("claude-haiku-4-5").cache_write_1h == 2.00


def test_gemini_cost_with_thinking_and_long_context(table):
    # Gemini: promptTokenCount 1,000 incl. 600 cached → input 400; thinking inside output.
    usage = Usage(
        input_tokens=400, cached_input_tokens=600, output_tokens=300, reasoning_tokens=200
    )
    assert table.cost_usd("gemini-2.5-flash", usage) == pytest.approx(
        (400 * 0.30 + 600 * 0.03 + 300 * 2.50) / 1e6
    )
    short = Usage(input_tokens=200_000, output_tokens=1000)
    long = Usage(input_tokens=200_001, output_tokens=1000)
    assert table.cost_usd("gemini-2.5-pro", short) == pytest.approx((200_000 * 1.25 + 10_000) / 1e6)
    assert table.cost_usd("gemini-2.5-pro", long) == pytest.approx(
        (200_001 * 2.50 + 1000 * 15.00) / 1e6
    )
    # Haiku 5.5's tier starts above 100k prompt tokens, counting cached ones too.
    mixed = Usage(input_tokens=60_000, cached_input_tokens=50_000, output_tokens=1000)
    assert table.cost_usd("claude-haiku-5-5", mixed) == pytest.approx(
        (60_000 * 0.50 + 50_000 * 0.05 + 1000 * 2.50) / 1e6
    )


def test_openai_cache_write_costs_the_input_price(table):
    p = table.price("gpt-4.1")
    assert p.cache_write == p.input


@pytest.mark.parametrize(
    ("alias", "model"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-sonnet-5-20260601", "claude-sonnet-5"),
        ("gemini-2.5-flash-lite-preview-09-2025", "gemini-2.5-flash-lite"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("GPT-4o", "gpt-4o"),
    ],
)
def test_aliases_resolve_by_longest_prefix(table, alias, model):
    assert table.resolve(alias) == model
    assert alias in table


def test_unknown_model_lists_known_ones(table):
    with pytest.raises(UnknownModel) as exc:
        table.cost_usd("gpt-5.4", Usage(input_tokens=1))
    message = str(exc.value)
    assert "no price for model 'gpt-5.4'" in message
    assert "gpt-4o-mini" in message and "gemini-2.5-pro" in message
    assert isinstance(exc.value, KeyError)
    assert "gpt-4" not in table  # a prefix of a known id is not that id


def test_overrides_merge_and_add():
    table = PriceTable.load(
        {
            "gpt-4o": {"input": 2.00},
            "llava:13b": {"input": 0, "output": 0},
            "gpt-4o-2024-11-20": {"input": 3.0, "output": 12.0},
        }
    )
    p = table.price("gpt-4o")
    assert (p.input, p.cached_input, p.output) == (2.00, 1.25, 10.00)  # only input changed
    assert table.cost_usd("llava:13b", Usage(input_tokens=10**6, output_tokens=10**6)) == 0
    # An override for a dated version wins over its family (longest prefix).
    assert table.price("gpt-4o-2024-11-20").input == 3.0
    assert table.price("gpt-4o-2024-08-06").input == 2.0
    assert PriceTable.load().price("gpt-4o").input == 2.50  # the shipped table is untouched


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"new-model": {"input": 1.0}}, "missing output"),
        ({"gpt-4o": {"inptu": 1.0}}, "unknown key"),
        ({"gpt-4o": {"input": -1}}, "input must be a number >= 0"),
        ({"gpt-4o": {"output": "cheap"}}, "output must be a number"),
        ({"gpt-4o": {"batch_discount": 50}}, "fraction"),
        ({"gpt-4o": 3}, "must be a mapping"),
        ({"gpt-4o": {"long_context": {"input": 1}}}, "long_context needs 'above'"),
    ],
)
def test_bad_overrides_name_model_and_key(override, match):
    with pytest.raises(ValueError, match=match):
        PriceTable.load(override)
