"""Figures, the manifest, the command line and notebooks under interruption and bad input.
Each guarantee here is listed in docs/reliability.md."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import ssd_lib.reporting.publish as publish  # noqa: E402
from ssd_lib.cli import main as cli_main  # noqa: E402

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("_train_child.py")


def _figure(value: float):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, value])
    return fig


def test_a_crash_after_the_manifest_commit_is_finished_by_the_next_publish(tmp_path, monkeypatch):
    publish.publish_figure(_figure(1), "curve", tmp_path, {"notebook": "a"})
    old = (tmp_path / "curve.png").read_bytes()

    def power_cut(staged, out):
        if staged:  # not the empty recovery at the start
            raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(publish, "_move_into_place", power_cut)
    with pytest.raises(KeyboardInterrupt):
        publish.publish_figure(_figure(2), "curve", tmp_path, {"notebook": "b"})
    monkeypatch.undo()
    # The manifest already describes the new figure; the old file is still in place.
    assert publish.check_manifest(tmp_path) == [
        "curve.png: content differs from its MANIFEST.json entry"
    ]
    assert publish.recover(tmp_path) == ["curve.png"]
    assert publish.check_manifest(tmp_path) == []
    assert (tmp_path / "curve.png").read_bytes() != old
    assert publish.read_manifest(tmp_path)["files"]["curve.png"]["notebook"] == "b"


def test_a_crash_before_the_commit_leaves_the_old_figure_and_entry(tmp_path, monkeypatch):
    publish.publish_figure(_figure(1), "curve", tmp_path, {"notebook": "a"})
    old = (tmp_path / "curve.png").read_bytes()

    def killed(path, obj):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(publish, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        publish.publish_figure(_figure(2), "curve", tmp_path, {"notebook": "b"})
    monkeypatch.undo()
    assert publish.check_manifest(tmp_path) == []
    assert [p.name for p in (tmp_path / publish.STAGING).iterdir()] == ["curve.png"]
    assert (tmp_path / "curve.png").read_bytes() == old
    assert publish.recover(tmp_path) == []  # the uncommitted staged files are dropped
    assert not any((tmp_path / publish.STAGING).iterdir())


def _publish_many(out_dir: str, tag: str) -> None:
    for i in range(6):
        publish.publish_table(pd.DataFrame({"x": [i]}), f"{tag}_{i}", out_dir, {"notebook": tag})


def test_two_processes_publishing_at_once_lose_no_manifest_entry(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_publish_many, args=(str(tmp_path), t)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    files = publish.read_manifest(tmp_path)["files"]
    assert len(files) == 2 * 6 * 3  # csv, md and json per table
    assert publish.check_manifest(tmp_path) == []


def test_a_failed_make_figures_is_recorded_and_keeps_figures_consistent(tmp_path, monkeypatch):
    import ssd_lib.reporting.figures as figures

    publish.publish_figure(_figure(1), "curve", tmp_path, {"notebook": "a"})

    def fails(*args, **kwargs):
        publish.publish_figure(_figure(3), "curve", tmp_path, {"notebook": "02"})
        raise RuntimeError("cell 7 of 03_disentanglement.ipynb raised ValueError")

    monkeypatch.setattr(figures, "run_notebooks", fails)
    with pytest.raises(RuntimeError):
        figures.regenerate(out=tmp_path)
    last = publish.read_manifest(tmp_path)["last_run"]
    assert last["state"] == "failed" and "03_disentanglement" in last["error"]
    assert publish.check_manifest(tmp_path) == []


def test_ctrl_c_in_make_figures_exits_130_with_one_line(tmp_path, monkeypatch, capsys):
    import ssd_lib.reporting.figures as figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "run_notebooks", interrupted)
    assert figures.main(["--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert publish.read_manifest(tmp_path)["last_run"]["state"] == "failed"


def test_an_unreadable_manifest_names_the_file(tmp_path):
    (tmp_path / "MANIFEST.json").write_text('{"files": {"a.png": ')
    with pytest.raises(publish.ManifestError, match="MANIFEST.json is not valid JSON"):
        publish.read_manifest(tmp_path)


def test_an_interrupted_suite_run_shows_one_line_in_jupyter(tiny_dataset, monkeypatch, capsys):
    """train_suite raises TrainingInterrupted for a run that stopped early, and IPython (the
    notebook kernel's shell) prints it as one line, with no traceback."""
    from IPython.core.interactiveshell import InteractiveShell

    import ssd_lib.experiments.suite as suite
    from ssd_lib.training.trainer import train

    def interrupted_train(cfg, dataset, **kwargs):
        run = train(cfg.replace(max_steps=1), dataset, **kwargs)  # stands for a Ctrl-C
        (run.path / "status.json").write_text('{"state": "interrupted", "step": 1}')
        return run

    monkeypatch.setattr(suite, "train", interrupted_train)
    shell = InteractiveShell.instance()
    shell.user_ns.update(train_suite=suite.train_suite, ds=tiny_dataset)
    shell.run_cell("train_suite(ds, 'smoke', 'cpu', names=['ssd'], show_progress=False)")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "TrainingInterrupted: training of 'ssd' stopped at step 1" in text
    assert "Traceback" not in text and "---" not in text
    assert len([line for line in text.splitlines() if line.strip()]) == 1


def test_ctrl_c_in_ssd_train_saves_exits_130_and_says_how_to_resume(photo_folder, tmp_path):
    photos = photo_folder(16)  # 2 steps per epoch; --epochs 2 with smoke's max_steps: 3 steps
    args = ["train", "--data", f"folder:{photos}", "--profile", "smoke", "--epochs", "2"]
    args += ["--out", str(tmp_path / "runs"), "--device", "cpu"]
    cut = subprocess.run(
        [sys.executable, str(CHILD), "--cli", "signal_at_step:SIGINT:2", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cut.returncode == 130, cut.stderr
    assert "Traceback" not in cut.stderr
    assert "interrupted:" in cut.stdout and "--resume" in cut.stdout
    resumed = subprocess.run(
        [sys.executable, "-m", "ssd_lib", *args, "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "complete:" in resumed.stdout and "step 3 of 3" in resumed.stdout


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--device", "gpu"], "argument --device: 'gpu'; allowed: auto, cpu, cuda"),
        (["sample", "--checkpoint", "x", "--out", "y", "--device", "cuda:x"], "'cuda:x'"),
        (["train", "--on-nonfinite", "retry"], "argument --on-nonfinite: invalid choice"),
    ],
)
def test_bad_device_and_fault_options_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_loading_a_run_status_that_is_not_json_names_the_file(tmp_path):
    from ssd_lib.training.runs import Run, RunError

    (tmp_path / "status.json").write_text("{half")
    with pytest.raises(RunError, match="status.json"):
        Run(tmp_path).status  # noqa: B018


def test_a_json_dump_of_the_manifest_lists_hashes(tmp_path):
    publish.publish_figure(_figure(1), "curve", tmp_path, {"notebook": "a"})
    entry = json.loads((tmp_path / "MANIFEST.json").read_text())["files"]["curve.png"]
    assert len(entry["sha256"]) == 64 and entry["notebook"] == "a"


def test_a_complete_make_figures_drops_entries_of_files_no_notebook_makes(tmp_path, monkeypatch):
    import ssd_lib.reporting.figures as figures

    publish.publish_figure(_figure(1), "old_name", tmp_path, {"notebook": "01"})
    (tmp_path / "old_name.png").unlink()  # a figure an older notebook made

    def runs(*args, **kwargs):
        publish.publish_figure(_figure(2), "new_name", tmp_path, {"notebook": "01"})
        return []

    monkeypatch.setattr(figures, "run_notebooks", runs)
    figures.regenerate(out=tmp_path)
    manifest = publish.read_manifest(tmp_path)
    assert (
        list(manifest["files"]) == ["new_name.png"] and manifest["last_run"]["state"] == "complete"
    )
    assert publish.check_manifest(tmp_path) == []


def test_the_committed_figures_agree_with_their_manifest():
    """What a reader downloads: every figure in figures/ is listed with its current hash."""
    figures_dir = Path(__file__).resolve().parents[1] / "figures"
    assert publish.check_manifest(figures_dir) == []
    assert publish.read_manifest(figures_dir)["last_run"]["state"] == "complete"


def test_make_figures_passes_runs_and_train_seed_only_when_given(tmp_path, monkeypatch):
    import ssd_lib.reporting.figures as figures

    seen = []
    monkeypatch.setattr(figures, "run_notebooks", lambda params, **kw: seen.append(params) or [])
    assert figures.main(["--out", str(tmp_path)]) == 0
    assert "run_source" not in seen[0] and "train_seed" not in seen[0]  # each notebook's own
    assert figures.main(["--out", str(tmp_path), "--runs", "local", "--train-seed", "43"]) == 0
    assert seen[1]["run_source"] == "local" and seen[1]["train_seed"] == 43
    with pytest.raises(SystemExit):
        figures.main(["--runs", "mine"])
