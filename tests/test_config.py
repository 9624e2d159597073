"""The job config: strict, every problem at once with its line, secrets never shown."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from evtui.cli_config import add_config_parser
from evtui.config import ConfigError, describe_routing, load_config, parse_config

CONFIGS = Path(__file__).parent / "configs"
ENV = {
    "EVTUI_TEST_OPENAI_1": "test-key-openai-one",
    "EVTUI_TEST_OPENAI_2": "test-key-openai-two",
    "EVTUI_TEST_ANTHROPIC": "test-key-anthropic",
    "EVTUI_TEST_PORT": "8080",
}

MINIMAL = """\
providers:
  openai:
    protocol: openai
    keys:
      - key: ${EVTUI_TEST_OPENAI_1}
targets:
  - id: openai/gpt-4o
prompts:
  default:
    text: Describe the frame.
"""


@pytest.fixture
def env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


def problems_of(text: str, env: dict[str, str] | None = None) -> list:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "job.yaml", ENV if env is None else env)
    return info.value.problems


def run_check(path: Path) -> int:
    parser = argparse.ArgumentParser(prog="evtui")
    add_config_parser(parser.add_subparsers())
    args = parser.parse_args(["config", "check", str(path)])
    return args.func(args)


def test_valid_sample_loads_with_env(env):
    cfg = load_config(CONFIGS / "valid.yaml")
    assert cfg.mode == "route"
    assert [t.id for t in cfg.targets] == [
        "openai/gpt-4o",
        "anthropic/claude-haiku-4-5",
        "local/llava-13b",
    ]
    assert cfg.providers["local"].base_url == "http://127.0.0.1:8080"
    assert cfg.providers["openai"].keys[0].key.get_secret_value() == ENV["EVTUI_TEST_OPENAI_1"]
    assert cfg.providers["openai"].keys[0].rpm == 500
    assert cfg.output_tokens(cfg.targets[1]) == 200
    assert cfg.output_tokens(cfg.targets[0]) == 300
    assert sorted(cfg.secrets()) == sorted(
        ENV[k] for k in ("EVTUI_TEST_OPENAI_1", "EVTUI_TEST_OPENAI_2", "EVTUI_TEST_ANTHROPIC")
    )


def test_shares_sum_to_one_and_follow_weights(env):
    cfg = load_config(CONFIGS / "valid.yaml")
    shares = cfg.shares()
    assert math.isclose(sum(shares.values()), 1.0)
    assert shares["openai/gpt-4o"] == pytest.approx(0.75)
    assert shares["local/llava-13b"] == 0.0


def test_compare_mode_sends_every_frame_everywhere():
    cfg = parse_config("mode: compare\n" + MINIMAL, env=ENV)
    assert cfg.shares() == {"openai/gpt-4o": 1.0}
    assert "every frame" in describe_routing(cfg)


def test_fallback_chain_is_transitive_and_ordered(env):
    cfg = load_config(CONFIGS / "valid.yaml")
    assert cfg.fallback_chain("openai/gpt-4o") == (
        "openai/gpt-4o",
        "anthropic/claude-haiku-4-5",
        "local/llava-13b",
    )


def test_prompt_version_tracks_text_only():
    base = parse_config(MINIMAL, env=ENV).prompt_version()
    reordered = MINIMAL.replace(
        "prompts:\n  default:\n    text: Describe the frame.\n",
        "prompts:\n    default:   {text:    'Describe the frame.'}\n",
    )
    moved = "prompts:\n  default:\n    text: Describe the frame.\n" + MINIMAL.split("prompts:")[0]
    assert parse_config(reordered, env=ENV).prompt_version() == base
    assert parse_config(moved, env=ENV).prompt_version() == base
    changed = MINIMAL.replace("Describe the frame.", "Describe the frame!")
    assert parse_config(changed, env=ENV).prompt_version() != base
    with_system = MINIMAL + "    system: You caption frames.\n"
    assert parse_config(with_system, env=ENV).prompt_version() != base


def test_unknown_keys_at_every_depth_reported_at_once_with_lines(env):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "unknown_keys.yaml")
    got = [(p.line, p.column, p.path) for p in info.value.problems]
    assert got == [
        (2, 1, "colour"),
        (8, 9, "providers.openai.keys[0].rpn"),
        (9, 5, "providers.openai.timeout"),
        (12, 5, "targets[0].wieght"),
        (18, 3, "render.size"),
    ]
    assert all("unknown key" in p.message for p in info.value.problems)
    assert "expected one of: key, rpm, tpm, name" in info.value.problems[1].message


def test_type_errors_point_at_the_value():
    text = MINIMAL + "mode: roulette\nretry:\n  max_attempts_per_frame_target: 500\n"
    probs = problems_of(text)
    by_path = {p.path: p for p in probs}
    assert (by_path["mode"].line, by_path["mode"].column) == (11, 7)
    assert "'route' or 'compare'" in by_path["mode"].message
    assert by_path["retry.max_attempts_per_frame_target"].line == 13


def test_missing_required_key_names_it():
    # Points at the mapping that lacks it (`openai:` on line 2).
    probs = problems_of(MINIMAL.replace("    protocol: openai\n", ""))
    assert [(p.path, p.line) for p in probs] == [("providers.openai.protocol", 2)]
    assert "missing required key 'protocol'" in probs[0].message


def test_yaml_syntax_error_is_one_problem_with_position():
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "syntax_error.yaml")
    (p,) = info.value.problems
    assert (p.line, p.column) == (6, 3)
    assert "YAML syntax error" in p.message


def test_duplicate_yaml_key_is_a_problem():
    probs = problems_of(MINIMAL + "mode: route\nmode: compare\n")
    assert [(p.path, p.line, p.message) for p in probs] == [("mode", 12, "duplicate key")]


def test_missing_env_names_path_and_variable_without_secret(monkeypatch, capsys):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("EVTUI_TEST_OPENAI_2")
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "valid.yaml")
    (p,) = info.value.problems
    assert p.path == "providers.openai.keys[1].key"
    assert p.line == 11
    assert "EVTUI_TEST_OPENAI_2" in p.message
    assert run_check(CONFIGS / "valid.yaml") == 2
    out = capsys.readouterr()
    for secret in ENV.values():
        if secret.startswith("test-key"):
            assert secret not in str(info.value) and secret not in out.err + out.out


def test_literal_key_in_file_is_rejected():
    probs = problems_of(MINIMAL.replace("${EVTUI_TEST_OPENAI_1}", "test-key-literal"))
    assert [p.path for p in probs] == ["providers.openai.keys[0].key"]
    assert "test-key-literal" not in probs[0].format("job.yaml")


def test_fallback_cycle_is_named(env):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "cycle.yaml")
    (p,) = info.value.problems
    assert p.message == (
        "fallback cycle: openai/gpt-4o → openai/gpt-4o-mini → openai/gpt-4.1 → openai/gpt-4o"
    )
    assert (p.path, p.line) == ("targets[0].fallbacks", 8)


def test_semantic_problems_all_reported():
    text = MINIMAL.replace(
        "  - id: openai/gpt-4o\n",
        "  - id: openai/gpt-4o\n"
        "    weight: 0\n"
        "    fallbacks: [openai/nowhere]\n"
        "  - id: nobody/gpt-4o\n"
        "    weight: 0\n"
        "  - id: openai/gpt-4o\n"
        "    weight: 0\n"
        "  - id: openai/mystery-model\n"
        "    weight: 0\n",
    )
    msgs = {(p.path, p.message.split(" ")[0]) for p in problems_of(text)}
    assert ("targets[0].fallbacks[0]", "fallback") in msgs
    assert ("targets[1].id", "unknown") in msgs
    assert ("targets[2].id", "duplicate") in msgs
    assert ("targets[3].id", "no") in msgs  # no price known
    assert ("targets", "in") in msgs  # all weights zero in route mode


def test_price_override_makes_unknown_model_valid():
    text = MINIMAL.replace("openai/gpt-4o", "openai/my-finetune")
    assert any("no price" in p.message for p in problems_of(text))
    cfg = parse_config(text + "prices:\n  my-finetune: {input: 1.0, output: 2.0}\n", env=ENV)
    assert cfg.price_table().price("my-finetune").output == 2.0


def test_redacted_keeps_references_and_loads_back(env):
    cfg = load_config(CONFIGS / "valid.yaml")
    snap = cfg.redacted()
    text = repr(snap)
    for secret in cfg.secrets():
        assert secret not in text
    assert snap["providers"]["openai"]["keys"][0]["key"] == "${EVTUI_TEST_OPENAI_1}"
    assert snap["providers"]["local"]["base_url"] == "http://127.0.0.1:${EVTUI_TEST_PORT}/"
    import yaml

    again = parse_config(yaml.safe_dump(snap), env=ENV)
    assert again.prompt_version() == cfg.prompt_version()
    assert again.shares() == cfg.shares()


def test_config_check_valid_prints_masked_tree(env, capsys):
    assert run_check(CONFIGS / "valid.yaml") == 0
    out = capsys.readouterr().out
    assert "75.0% of frames" in out
    assert "openai/gpt-4o → anthropic/claude-haiku-4-5 → local/llava-13b" in out
    assert "limits learned from headers" in out and "rpm 500, tpm 30000" in out
    assert "$25.00" in out
    for secret in ENV.values():
        if secret.startswith("test-key"):
            assert secret not in out
    assert "tes…-one" in out  # masked, still tells keys apart


def test_config_check_invalid_lists_every_problem(env, capsys):
    assert run_check(CONFIGS / "unknown_keys.yaml") == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "unknown key" in line]
    assert len(lines) == 5
    assert lines[0].startswith(f"{CONFIGS / 'unknown_keys.yaml'}:2:1: colour: unknown key")
    assert "Traceback" not in err


def test_config_check_missing_file_is_one_line(tmp_path, capsys):
    assert run_check(tmp_path / "absent.yaml") == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "text",
    ["", "- a\n- b\n", "just a string\n", "providers: [1, 2]\n", "a: !!python/object:os.system x"],
)
def test_odd_documents_never_crash(text):
    assert problems_of(text)


def test_config_renderer_names_match_the_renderers():
    """config.py may not import evtui.events, so it lists the names: keep them in step."""
    import typing

    from evtui.config import RenderMethod
    from evtui.events.render import list_methods

    assert set(typing.get_args(RenderMethod)) == set(list_methods())


def test_evtui_config_check_exit_codes_through_the_real_command():
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), **ENV)

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "evtui.cli", "config", "check", str(CONFIGS / name)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    ok = run("valid.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr
    assert not any(v in ok.stdout + ok.stderr for k, v in ENV.items() if "PORT" not in k)
    bad = run("unknown_keys.yaml")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    problems = [ln for ln in bad.stderr.splitlines() if "unknown_keys.yaml:" in ln]
    assert len(problems) >= 2  # every problem listed, not just the first


def test_a_misspelt_key_gets_a_suggestion():
    with pytest.raises(ConfigError) as e:
        load_config(CONFIGS / "unknown_keys.yaml")
    text = str(e.value)
    assert "unknown key 'wieght' (did you mean 'weight'?" in text
    assert "unknown key 'colour' (expected one of" in text  # nothing close: no guess
