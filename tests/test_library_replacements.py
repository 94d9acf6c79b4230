"""Issue 18: hand-written code replaced by the dependencies' functions gives the same results.

Each test keeps a copy of the code that was replaced (``_old_*``) as the reference and
compares the new implementation with it on representative inputs.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssd_lib.metrics import tables, toy
from ssd_lib.metrics.features import MetricResult
from ssd_lib.training.runs import Run
from ssd_lib.utils import images

ROOT = Path(__file__).resolve().parents[1]


# --- 1. images.make_grid -> torchvision.utils.make_grid ---------------------------------------


def _old_make_grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    nrows = (n + ncol - 1) // ncol
    grid = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8
    )
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid if c == 3 else grid[..., 0]


def _random_uint8(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 9, 16, 17])
@pytest.mark.parametrize("nrow", [1, 3, 8, 20])
def test_make_grid_equals_the_hand_written_one(n, nrow):
    for c, (h, w), padding, pad_value, kwargs in (
        (3, (4, 5), 2, 255, {}),  # the defaults
        (3, (4, 5), 0, 255, {"padding": 0}),
        (3, (3, 3), 1, 0, {"padding": 1, "pad_value": 0}),
        (3, (2, 6), 3, 7, {"padding": 3, "pad_value": 7}),
        (1, (4, 4), 2, 255, {}),  # one channel: a 2-D grid, as before
        (4, (3, 3), 2, 255, {}),  # four: a 2-D grid of the first channel, as before
        (2, (3, 3), 1, 9, {"padding": 1, "pad_value": 9}),
    ):
        x = _random_uint8(n, c, h, w, seed=n * 100 + nrow)
        new = images.make_grid(x, nrow=nrow, **kwargs)
        old = _old_make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value)
        assert new.dtype == old.dtype == np.uint8
        assert new.shape == old.shape
        assert np.array_equal(new, old), (n, nrow, c, padding, pad_value)


def test_make_grid_of_64px_samples_and_strided_input_equal_the_old_grid():
    x = _random_uint8(16, 3, 64, 64, seed=1)
    assert np.array_equal(images.make_grid(x, nrow=4), _old_make_grid(x, nrow=4))
    strided = x.flip(0)[::2].contiguous(memory_format=torch.channels_last)
    assert np.array_equal(images.make_grid(strided, nrow=3), _old_make_grid(strided, nrow=3))


def test_save_grid_writes_the_same_png_as_before(tmp_path):
    x = _random_uint8(10, 3, 8, 8, seed=2)
    images.save_grid(x, tmp_path / "new.png", nrow=4)
    images.save_image(_old_make_grid(x, nrow=4), tmp_path / "old.png")
    assert (tmp_path / "new.png").read_bytes() == (tmp_path / "old.png").read_bytes()


def test_make_grid_refuses_what_it_cannot_tile():
    with pytest.raises(ValueError, match="uint8"):
        images.make_grid(torch.zeros(2, 3, 4, 4))  # float
    with pytest.raises(ValueError, match="uint8"):
        images.make_grid(torch.zeros(3, 4, 4, dtype=torch.uint8))  # one image, no batch axis
    with pytest.raises(ValueError, match="N >= 1"):
        images.make_grid(torch.zeros(0, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="nrow"):
        images.make_grid(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), nrow=0)


# --- 2. wasserstein_1d and _entropy_bits -> scipy.stats -----------------------------------------


def _old_wasserstein_1d(u, v) -> float:
    u, v = np.sort(np.asarray(u, np.float64)), np.sort(np.asarray(v, np.float64))
    grid = np.sort(np.concatenate([u, v]))
    cdf_u = np.searchsorted(u, grid[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, grid[:-1], side="right") / len(v)
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(grid)))


def _old_entropy_bits(counts: np.ndarray) -> float:
    if counts.sum() == 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def test_wasserstein_1d_equals_the_hand_written_one():
    rng = np.random.default_rng(0)
    cases = [
        ([0.0, 1.0], [1.0, 0.0]),
        ([0.0], [1.0]),
        ([0.0, 2.0], [1.0]),
        ([3, 1, 2], [2, 2, 2, 2]),  # ints, ties
        (rng.normal(size=200), rng.normal(0.3, 2.0, size=200)),
        (rng.normal(size=5000), rng.normal(size=4000)),  # unequal sizes, like real vs fake
        (rng.uniform(-60, 60, 300).astype(np.float32), rng.uniform(-60, 60, 250)),  # degrees
        (rng.integers(0, 4, 500).astype(float), rng.integers(0, 4, 300).astype(float)),  # ties
        (np.full(10, 5.0), np.full(7, 5.0)),  # identical: 0
    ]
    for u, v in cases:
        new, old = toy.wasserstein_1d(u, v), _old_wasserstein_1d(u, v)
        assert isinstance(new, float)
        assert new == pytest.approx(old, rel=1e-12, abs=1e-15)


def test_entropy_bits_equals_the_hand_written_one():
    rng = np.random.default_rng(1)
    cases = [
        np.array([0, 0, 0]),  # nothing counted (no fake passed the realness gate): 0, not NaN
        np.array([7]),
        np.array([0, 5, 0, 0]),  # one combination: 0 bits
        np.array([1, 1]),  # 1 bit
        np.full(24, 10),  # uniform over the 24 ear/ear/fur combinations: log2(24)
        np.bincount(rng.integers(0, 24, 5000), minlength=24),
        np.bincount(rng.integers(0, 5, 300), minlength=24),  # mode collapse: zeros
        rng.integers(0, 1000, 24),
    ]
    for counts in cases:
        new, old = toy._entropy_bits(counts), _old_entropy_bits(counts)
        assert isinstance(new, float)
        assert new == pytest.approx(old, rel=1e-12, abs=1e-15)
    assert toy._entropy_bits(np.full(24, 10)) == pytest.approx(np.log2(24), rel=1e-14)


# --- 3. the hand-written R^2 in held_out_scores -> sklearn.metrics.r2_score --------------------


def _old_r2(truth: np.ndarray, p: np.ndarray) -> float:
    ss_tot = max(((truth - truth.mean()) ** 2).sum(), 1e-12)
    return float(1.0 - ((p - truth) ** 2).sum() / ss_tot)


def test_held_out_r2_equals_the_hand_written_one(monkeypatch):
    rng = np.random.default_rng(2)
    n = 200
    truth = np.stack([rng.uniform(-30, 30, n), rng.integers(0, 3, n)], axis=1)
    cases = {
        "good": (truth[:, 0] + rng.normal(0, 3, n)).astype(np.float32),  # float32 like embed
        "poor": rng.uniform(-30, 30, n).astype(np.float32),  # R^2 < 0
        "exact": truth[:, 0].astype(np.float32),
        "shifted": (truth[:, 0] + 10.0).astype(np.float32),
    }
    net = SimpleNamespace(
        factor_names=["rot", "cls"],
        specs={"rot": {"kind": "continuous"}, "cls": {"kind": "categorical", "n_classes": 3}},
    )
    for label, p in cases.items():
        preds = {"rot": p, "cls": truth[:, 1].astype(np.int64)}
        monkeypatch.setattr(toy, "embed", lambda net, images, preds=preds: (None, preds))
        scores = toy.held_out_scores(net, torch.zeros(n), torch.from_numpy(truth).float())
        t = truth[:, 0].astype(np.float32).astype(np.float64)  # what held_out_scores sees
        assert scores["rot"]["r2"] == pytest.approx(_old_r2(t, p), rel=1e-12, abs=1e-15), label
        assert scores["rot"]["mae"] == float(np.abs(p - t).mean())
        assert scores["cls"]["accuracy"] == 1.0


# --- 5. Run.history: csv -> pandas ---------------------------------------------------------------


def _old_history(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows]) for k in rows[0]}


def _assert_same_history(new: dict, old: dict) -> None:
    assert list(new) == list(old)
    for k in old:
        assert new[k].dtype == old[k].dtype == np.float64, k
        assert new[k].shape == old[k].shape, k
        assert np.array_equal(new[k].view(np.uint64), old[k].view(np.uint64)), k  # bit-exact
        assert new[k].flags.writeable


def _write_history(folder: Path, rows: list[dict], columns: list[str]) -> Path:
    from ssd_lib.utils.atomic import atomic_write_csv

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(folder / "history.csv", rows, columns)  # as the trainer writes it
    return folder


def test_history_equals_the_csv_reader_on_the_published_runs():
    paths = sorted((ROOT / "published").glob("*/history.csv"))
    if not paths:
        pytest.skip("no published run in this checkout")
    for path in paths:
        _assert_same_history(Run(path.parent).history(), _old_history(path))


def test_history_equals_the_csv_reader_on_a_trainer_style_file(tmp_path):
    rnd = random.Random(0)
    columns = ["step", "epoch", "loss_g", "sigma_raw/middle.0", "d_val_eval", "never"]
    specials = [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308]
    rows = []
    for step in range(1, 2001):
        row = {"step": step, "epoch": step // 100}
        row["loss_g"] = rnd.uniform(-5, 5) * 10 ** rnd.randint(-30, 30)
        row["sigma_raw/middle.0"] = rnd.choice(specials) if step % 97 == 0 else rnd.random()
        if step % 25 == 0:  # measured now and then: an empty cell otherwise
            row["d_val_eval"] = rnd.random()
        rows.append(row)
    run = Run(_write_history(tmp_path / "run", rows, columns))
    new, old = run.history(), _old_history(run.path / "history.csv")
    _assert_same_history(new, old)
    assert np.isnan(new["never"]).all() and np.isnan(new["d_val_eval"][:24]).all()


@pytest.mark.parametrize(
    "text",
    [
        "",  # 0 bytes
        "\n\n",
        "step,loss_g\n",  # header only
        "step,loss_g\n1,0.5\n2,\n",
        "step,loss_g\r\n1,0.5\r\n",
        "step,loss_g\n1,0.5\n\n2,0.25\n",  # blank line
        "step,loss_g\n1,0.5\n2,0.2",  # no final newline
        "step,loss_g\n1,nan\n2,inf\n3,-inf\n",
    ],
)
def test_history_equals_the_csv_reader_on_small_files(tmp_path, text):
    (tmp_path / "history.csv").write_text(text, newline="")
    _assert_same_history(Run(tmp_path).history(), _old_history(tmp_path / "history.csv"))


def test_history_of_a_missing_file_raises_and_a_short_last_row_reads_as_nan(tmp_path):
    with pytest.raises(FileNotFoundError):
        Run(tmp_path).history()
    # A last row with fewer cells than the header: the csv reader raised TypeError (float of
    # None); pandas fills the missing cells with NaN. The trainer writes whole files
    # atomically, so only a damaged file has one.
    (tmp_path / "history.csv").write_text("step,loss_g,loss_d\n1,0.5,0.25\n2,0.4\n")
    with pytest.raises(TypeError):
        _old_history(tmp_path / "history.csv")
    h = Run(tmp_path).history()
    assert h["loss_g"].tolist() == [0.5, 0.4] and np.isnan(h["loss_d"][1])


# --- 6. tables._build: keyword-only arguments ---------------------------------------------------


def _fake_run() -> SimpleNamespace:
    cfg = SimpleNamespace(generator="ssd", stylegan_width=1.0, profile="smoke", seed=42)
    return SimpleNamespace(config=cfg, path=Path("runs/fake"), status={"step": 3})


def test_build_takes_seed_and_net_seed_only_by_keyword(monkeypatch):
    seen: dict[str, object] = {}

    def evaluate(run, dataset, protocol, **kwargs):
        seen["evaluate seed"] = kwargs["seed"]
        return [
            MetricResult(n, v, 10, 10, {"weights_verified": True})
            for n, v in (("FID", 300.0), ("clean-FID", 290.0), ("clean-KID", 0.2))
        ]

    def toy_net(dataset, toy_flag, seed):
        seen["net seed"] = seed
        return "net"

    def toy_cells(run, dataset, toy_n, seed, net):
        seen["toy seed"], seen["toy_n"] = seed, toy_n
        return {"FD-toy": 1.0}

    monkeypatch.setattr(tables, "_toy_net", toy_net)
    monkeypatch.setattr(tables, "toy_cells", toy_cells)
    dataset = SimpleNamespace(name="tiny", content_hash="ab" * 32, val=None)
    for build in (tables.table1, tables.table2):
        if build is tables.table1:
            monkeypatch.setattr(tables, "parameter_counts", lambda run: ("1.000", "1.000"))
        seen.clear()
        t = build(
            {100: _fake_run()}, dataset, toy=True, toy_n=7, seed=11, net_seed=22, evaluate=evaluate
        )
        assert seen == {"evaluate seed": 11, "net seed": 22, "toy seed": 11, "toy_n": 7}
        assert t.frame.iloc[0]["FD-toy"] == 1.0
        assert t.frame.iloc[0]["FD-toy over training seeds"] == "1 (n=1)"  # a local run
        assert t.frame.iloc[0][f"FID ({'matched' if build is tables.table1 else 'paper'})"] == 300

    positional = ("T", {}, dataset, "paper", False, 5, 0, 0, evaluate, {}, None, None)
    with pytest.raises(TypeError, match="positional"):
        tables._build(*positional)
