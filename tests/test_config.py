"""hgm/config.py: defaults, -c file merge, dotted overrides, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hgm.config import DEFAULT_CONFIG, HGMConfig, dump_config, load_config
from hgm.errors import UserError


def test_defaults_match_the_model_and_the_packaged_yaml() -> None:
    assert load_config() == HGMConfig()
    # every field of the model is spelled out in default.yaml, and nothing else
    assert yaml.safe_load(DEFAULT_CONFIG.read_text()) == HGMConfig().model_dump(mode="json")


def test_file_is_merged_over_the_defaults(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("search:\n  alpha: 0.3\n  policy: dgm\nsandbox:\n  backend: none\n")
    c = load_config(f)
    assert (c.search.alpha, c.search.policy, c.sandbox.backend) == (0.3, "dgm", "none")
    assert c.search.max_task_evals == 800 and c.sandbox.memory_mb == 4096  # untouched keys keep defaults


def test_dotted_overrides_win_over_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("search:\n  alpha: 0.3\n")
    c = load_config(f, ["search.alpha=0.9", "search.cool_down=true", "benchmark.task_ids=[a, b]",
                        "llm.base_url=http://x:1/v1", "budget.max_usd_run="])
    assert c.search.alpha == 0.9 and c.search.cool_down is True
    assert c.benchmark.task_ids == ["a", "b"] and c.llm.base_url == "http://x:1/v1"
    assert c.budget.max_usd_run is None


def test_missing_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("override, message", [
    ("search.alhpa=0.5", "search.alhpa"),
    ("nosuch.key=1", "nosuch"),
    ("search.alpha=-1", "search.alpha"),
    ("search.workers=many", "search.workers"),
    ("search.policy=best", "search.policy"),
    ("search.alpha", "must look like section.key=value"),
    ("search.alpha.x=1", "alpha is not a section"),
])
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        load_config(overrides=[override])


def test_unknown_key_in_a_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("search:\n  alpha: 0.5\n  tmeperature: 2\n")
    with pytest.raises(UserError, match="search.tmeperature"):
        load_config(f)
    f.write_text("- not\n- a mapping\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        load_config(f)
    f.write_text("search: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(f)


def test_dump_round_trips(tmp_path: Path) -> None:
    c = load_config(overrides=["search.alpha=0.25", "llm.cassette=/tmp/x.jsonl"])
    f = tmp_path / "resolved.yaml"
    f.write_text(dump_config(c))
    assert load_config(f) == c
