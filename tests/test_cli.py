"""The ssd command line: its subcommands, exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ssd_lib.cli import main

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture
def photos(photo_folder):
    return photo_folder(16)


def exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse and usage errors
        return e.code


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--preset", "nope"], "argument --preset: invalid choice: 'nope' (choose from"),
        (["train", "--data", "somewhere"], "argument --data: 'somewhere'; allowed: embedded"),
        (["train", "--data", "folder:/no/such/dir"], "folder '/no/such/dir' does not exist"),
        (["train", "--epochs", "0"], "argument --epochs: '0' is not an integer >= 1"),
        (["sample", "--n", "5"], "the following arguments are required: --checkpoint, --out"),
        (["eval", "--run", "x", "--protocol", "fast"], "argument --protocol: invalid choice"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(argv, words, capsys):
    assert exit_code(argv) == 2
    assert words in capsys.readouterr().err


def test_a_config_the_recipe_refuses_exits_2_with_its_reason(photos, capsys):
    argv = ["train", "--data", f"folder:{photos}", "--profile", "smoke", "--fraction", "2"]
    assert exit_code(argv) == 2
    assert "data_fraction=2.0" in capsys.readouterr().err


def test_prepare_train_sample_and_eval_end_to_end(photos, tmp_path, capsys, monkeypatch):
    data, runs = tmp_path / "data", tmp_path / "runs"
    assert main(["prepare", "--data", f"folder:{photos}", "--data-root", str(data)]) == 0
    assert "16 train" in capsys.readouterr().out

    train = [
        "train",
        "--data",
        f"folder:{photos}",
        "--data-root",
        str(data),
        "--runs-dir",
        str(runs),
    ]
    train += ["--profile", "smoke", "--device", "cpu"]
    assert main(train) == 0
    out = capsys.readouterr().out
    assert out.startswith("complete: ") and "(step 2 of 2)" in out  # 16 images / batch 8
    (run,) = runs.iterdir()

    # The same command again must not silently retrain or reuse: it says what to do.
    assert main(train) == 1
    assert "pass --resume to continue or reuse it" in capsys.readouterr().err
    assert main([*train, "--resume"]) == 0

    samples = tmp_path / "samples"
    assert main(["sample", "--checkpoint", str(run), "--n", "5", "--out", str(samples)]) == 0
    assert len(list(samples.glob("*.png"))) == 5
    stem = run / "checkpoints" / "latest.json"
    again = tmp_path / "again"
    assert main(["sample", "--checkpoint", str(stem), "--n", "5", "--out", str(again)]) == 0
    for a, b in zip(sorted(samples.glob("*.png")), sorted(again.glob("*.png")), strict=True):
        assert a.read_bytes() == b.read_bytes()  # same generator, same seed

    # Offline: the Inception weights are missing -> exit 1 and one line saying which file.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    capsys.readouterr()  # drop the progress bars so far
    assert main(["eval", "--run", str(run), "--data-root", str(data)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "MissingWeightsError" in err and "Inception weights" in err


def test_sample_refuses_a_checkpoint_that_is_not_there(tmp_path, capsys):
    argv = ["sample", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    assert exit_code(argv) == 2
    assert "no run folder or checkpoint there" in capsys.readouterr().err


def test_sample_passes_the_pickle_refusal_through(tmp_path, capsys):
    import pickle

    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    argv = ["sample", "--checkpoint", str(bad), "--out", str(tmp_path / "o")]
    assert exit_code(argv) == 1
    err = capsys.readouterr().err
    assert "pickle-based file" in err and "never unpickles" in err
    assert "no run folder or checkpoint there" not in err


def test_the_prepared_datasets_folder_has_one_name_in_every_command():
    from ssd_lib.cli import _parser

    parser = _parser()
    for argv in (["prepare", "--data", "embedded"], ["train"], ["eval", "--run", "r"]):
        args = parser.parse_args([*argv, "--data-root", "somewhere"])
        assert str(args.data_root) == "somewhere"
    # The first names still work.
    assert str(parser.parse_args(["prepare", "--data", "embedded", "--out", "x"]).data_root) == "x"
    assert str(parser.parse_args(["train", "--out", "r"]).runs_dir) == "r"


def test_a_folder_named_like_a_built_in_source_stays_a_folder(tmp_path, monkeypatch):
    from ssd_lib.cli import _data_source

    (tmp_path / "afhq").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _data_source("folder:afhq") == str(tmp_path / "afhq")
    assert _data_source("afhq") == "afhq"


def test_eval_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert exit_code(["eval", "--run", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_python_dash_m_and_the_entry_point_show_help():
    ssd = Path(sys.executable).with_name("ssd")  # the entry point pip installed
    for cmd in ([sys.executable, "-m", "ssd_lib"], [sys.executable, "-m", "ssd_lib.cli"], [ssd]):
        result = subprocess.run([*cmd, "train", "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "--resume" in result.stdout
