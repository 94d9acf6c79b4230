"""Run folders (ssd_lib.training.runs): names that say the budget, files read when they change."""

from __future__ import annotations

import json

from ssd_lib.config import make_config
from ssd_lib.training.runs import Run, run_name


def test_run_names_follow_the_config_hash_and_flag_contradicting_overrides():
    cfg = make_config("paper", "quick")
    assert run_name(cfg, "abc") == f"paper-quick-embedded-{cfg.config_hash('abc')}"
    assert cfg.config_hash("abc") != cfg.config_hash("abd") != cfg.config_hash()
    # an override of a field the profile sets is named; other overrides keep the plain name
    longer = make_config("paper", "quick", epochs=20)
    assert run_name(longer, "abc").startswith("paper-quick+epochs=20-embedded-")
    assert run_name(make_config("paper", "quick", seed=7), "abc").startswith(
        "paper-quick-embedded-"
    )
    both = make_config("stylegan", "quick", epochs=3, stylegan_width=0.25)
    assert run_name(both, "x").startswith("stylegan-quick+epochs=3+stylegan_width=0.25-")


def test_status_follows_the_file(tmp_path):
    run = Run(tmp_path)
    assert run.status == {} and not run.complete
    for step in (5, 6):  # equal sizes, written within a millisecond
        (tmp_path / "status.json").write_text(json.dumps({"state": "running", "step": step}))
        assert run.status["step"] == step
    (tmp_path / "status.json").write_text(json.dumps({"state": "complete", "step": 6}))
    assert run.complete


def test_config_is_read_once(tmp_path):
    cfg = make_config("paper", "smoke")
    (tmp_path / "config.json").write_text(cfg.to_json())
    run = Run(tmp_path)
    assert run.config == cfg
    (tmp_path / "config.json").write_text("not json")  # a run's config never changes
    assert run.config == cfg
