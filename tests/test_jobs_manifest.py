"""Which manifest differences would change results, and how each is named."""

from __future__ import annotations

from evtui.jobs.manifest import diff, harmful

SECRET = "xyz" + "0987654321" * 3


def base():
    return {
        "config": {
            "targets": [{"id": "a/x", "weight": 1.0}, {"id": "b/y", "weight": 2.0}],
            "providers": {"a": {"protocol": "openai", "keys": [{"key": "***"}], "options": {}}},
            "render": {"window": "33ms"},
        },
        "render": {"window": "33ms"},
        "prompts": {"default": "v1"},
        "mode": "route",
    }


def test_identical_manifests_differ_in_nothing():
    assert diff(base(), base()) == []


def test_reordered_targets_are_no_difference_but_an_added_one_is_one_line():
    new = base()
    new["config"]["targets"].reverse()
    assert diff(base(), new) == []
    new["config"]["targets"].append({"id": "c/z", "weight": 1.0})
    (d,) = diff(base(), new)
    assert d.path == "config.targets[c/z]" and not d.harmless
    assert str(d) == 'config.targets[c/z]: (absent) -> {"id":"c/z","weight":1.0}'


def test_a_top_level_change_is_not_repeated_from_the_config():
    new = base()
    new["render"]["window"] = "50ms"
    new["config"]["render"]["window"] = "50ms"
    assert [str(d) for d in diff(base(), new)] == ["render.window: 33ms -> 50ms"]


def test_provider_options_and_unknown_keys_are_refused_by_default():
    new = base()
    new["config"]["providers"]["a"]["options"]["temperature"] = 0.7
    new["models"] = ["x"]
    new["mode"] = "compare"
    bad = {d.path for d in harmful(diff(base(), new))}
    assert bad == {"config.providers.a.options.temperature", "models", "mode"}


def test_type_changes_count():
    old, new = base(), base()
    old["config"]["flag"], new["config"]["flag"] = 1, True
    assert [d.path for d in diff(old, new)] == ["config.flag"]


def test_secrets_are_never_shown_even_inside_an_added_provider():
    new = base()
    new["config"]["providers"]["a"]["keys"] = [{"key": SECRET}]
    new["config"]["providers"]["g"] = {"protocol": "gemini", "keys": [{"key": SECRET}]}
    found = diff(base(), new)
    text = "\n".join(map(str, found))
    assert SECRET not in text
    assert "config.providers.a.keys: (changed)" in text
    assert all(d.harmless for d in found)  # keys change nothing; an unused provider neither


def test_long_values_are_cut():
    new = base()
    new["prompts"]["default"] = "v" * 500
    (d,) = diff(base(), new)
    assert len(str(d)) < 120 and str(d).endswith("…")
