"""What the notebooks' figures show: every label inside the figure, every factor and bar on
its axes, one tick format, no empty panel, warnings in a colour of their own, and nearest
neighbours that are the real ones (with a hub reported, not hidden)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

from ssd_lib.analysis.memorization import (
    audit,
    closest_per_neighbour,
    distance_figure,
    neighbours_figure,
    pixel_nearest,
)
from ssd_lib.analysis.probes import PROBE_FLOOR, probe_bar_figure
from ssd_lib.analysis.samples import diversity_curve, diversity_figure
from ssd_lib.analysis.spectral import discriminator_figure, sigma_figure
from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared
from ssd_lib.data.embedded import FACTOR_NAMES, FACTORS, sample_factors
from ssd_lib.data.summary import factor_figure
from ssd_lib.training.runs import Run


def drawn(fig):
    """Lay the figure out and draw it (Agg, no pyplot); returns the renderer."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def inside(fig, artist, renderer, tol: float = 1.0) -> bool:
    box, frame = artist.get_window_extent(renderer), fig.bbox
    return (
        box.x0 >= frame.x0 - tol
        and box.y0 >= frame.y0 - tol
        and box.x1 <= frame.x1 + tol
        and box.y1 <= frame.y1 + tol
    )


def make_run(path, columns: dict, warnings: list | None = None) -> Run:
    """A run folder holding only what the figures read: history.csv (and warnings.json)."""
    path.mkdir(parents=True)
    pd.DataFrame(columns).to_csv(path / "history.csv", index=False)
    (path / "warnings.json").write_text(json.dumps(warnings or []))
    return Run(path)


# ------------------------------------------------------------------ memorization audit


FEATURES = "toy factor CNN, seed 0, dataset hash deda95af53c7 (a long name)"


def test_distance_figure_keeps_the_whole_x_label_inside_the_figure():
    rng = np.random.default_rng(0)
    result = audit(
        rng.normal(size=(50, 4)) + 3, rng.normal(size=(300, 4)), rng.normal(size=(120, 4)), FEATURES
    )
    fig = distance_figure(result, "dataset=embedded preset=paper profile=quick " * 3)
    renderer = drawn(fig)
    ax = fig.axes[0]
    assert FEATURES in ax.get_xlabel().replace("\n", " ")  # the information is kept
    for text in (ax.xaxis.label, ax.yaxis.label, *fig.texts):
        assert inside(fig, text, renderer), text.get_text()


def test_pixel_nearest_matches_brute_force_over_chunks():
    g = torch.Generator().manual_seed(0)
    ref = torch.randint(0, 256, (37, 3, 4, 4), dtype=torch.uint8, generator=g)
    query = torch.cat([ref[[30, 3]], torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)])
    d, i = pixel_nearest(query, ref, chunk=8)  # the answers lie in different chunks
    full = torch.cdist(query.flatten(1).float(), ref.flatten(1).float())
    assert i.tolist() == full.argmin(dim=1).tolist() and i[:2].tolist() == [30, 3]
    expect = full.min(dim=1).values / 48**0.5  # RMS over the 48 values of an image
    assert d == pytest.approx(expect.numpy(), abs=1e-4) and d[:2].tolist() == [0.0, 0.0]


def _feature_panels(fig, n):
    """The three panels of each shown sample, top to bottom (one band)."""
    axes = np.array(fig.axes).reshape(3, -1)
    return [[axes[r, k].images[0].get_array() for r in range(3)] for k in range(n)]


def test_neighbours_figure_shows_each_samples_own_neighbour_in_both_spaces():
    """Would catch a nearest neighbour taken over the wrong axis, a shuffled index or a
    figure that shows the same training image for every sample."""
    g = torch.Generator().manual_seed(1)
    train_imgs = torch.randint(0, 256, (60, 3, 8, 8), dtype=torch.uint8, generator=g)
    rng = np.random.default_rng(2)
    train_f = rng.normal(size=(60, 5))
    perm = np.array([41, 7, 19, 3, 55])  # 5 generated (queries) != 60 train (reference)
    gen_f = train_f[perm] + 1e-3 * np.arange(1, 6)[:, None]  # closest first: 41, 7, ...
    gen_imgs = train_imgs[perm]
    result = audit(gen_f, train_f, rng.normal(size=(120, 5)), "f")
    assert result.generated_index.tolist() == perm.tolist()
    assert result.n_distinct_neighbours == 5 and result.top_neighbour_share == 0.2
    fig = neighbours_figure(gen_imgs, train_imgs, result, "label", rows=5)
    assert len(fig.axes) == 3 * 5  # generated / feature neighbour / pixel neighbour columns
    for k, (gen, feat, pix) in enumerate(_feature_panels(fig, 5)):
        want = train_imgs[perm[k]].permute(1, 2, 0).numpy()
        assert np.array_equal(gen, want) and np.array_equal(feat, want)
        assert np.array_equal(pix, want)
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "5 generated samples have 5 distinct nearest training images" in title
    assert "(120 held-out reals:" in title and "hub" not in title


def test_neighbours_figure_reports_a_hub_and_shows_the_pixel_neighbours():
    """Samples far from the data in feature space all land on one training image (a hub);
    the figure says so and shows each sample's pixel-space neighbour, which differs."""
    g = torch.Generator().manual_seed(3)
    train_imgs = torch.randint(0, 256, (200, 3, 8, 8), dtype=torch.uint8, generator=g)
    rng = np.random.default_rng(4)
    train_f = rng.normal(size=(200, 6))
    centre = np.array([100.0, 0, 0, 0, 0, 0])
    gen_f = rng.normal(size=(40, 6)) * 0.01 + centre  # a tight cluster far from the data
    hub = int(np.argmin(np.linalg.norm(train_f - centre, axis=1)))
    near = (train_imgs[10:50].int() + 3).clamp(0, 255).to(torch.uint8)  # pixel near-copies
    result = audit(gen_f, train_f, rng.normal(size=(150, 6)), "f")
    assert (result.generated_index == hub).all() and result.top_neighbour_share == 1.0
    assert result.n_distinct_neighbours == 1
    fig = neighbours_figure(near, train_imgs, result, "label", rows=12, per_line=6)
    assert len(fig.axes) == 2 * 3 * 6  # 12 samples as two bands of 6 columns
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "40 generated samples have 1 distinct nearest training images" in title
    assert "100%" in title and "hub" in title
    distinct_val = len(np.unique(result.val_index))
    assert distinct_val > 75 and f"(150 held-out reals: {distinct_val} distinct)" in title
    order = np.argsort(result.generated_to_train, kind="stable")[:12]
    axes = np.array(fig.axes).reshape(6, 6)
    for k, i in enumerate(order):
        band, col = divmod(k, 6)
        pix = axes[3 * band + 2, col].images[0].get_array()
        assert np.array_equal(pix, train_imgs[10 + i].permute(1, 2, 0).numpy())


def test_neighbours_figure_shows_one_column_per_neighbour_when_samples_crowd_one_image():
    """Many near-identical samples around one training image (seen on the published SSD
    run: the 8 closest samples were one picture repeated): the columns show the closest
    sample of each distinct neighbour, closest first, with the crowd's size on the head."""
    g = torch.Generator().manual_seed(5)
    train_imgs = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=g)
    rng = np.random.default_rng(6)
    train_f = rng.normal(size=(50, 4)) * 10
    crowd = train_f[[9] * 30] + 1e-4 * np.arange(30)[:, None]  # 30 samples at train 9
    others = train_f[[4, 21, 33]] + np.array([[0.01], [0.02], [0.03]])
    gen_f = np.concatenate([crowd, others])
    result = audit(gen_f, train_f, rng.normal(size=(100, 4)) * 10, "f")
    chosen = closest_per_neighbour(result, 4)
    assert result.generated_index[chosen].tolist() == [9, 4, 21, 33]
    assert chosen[0] == 0  # the closest of the crowd
    # asking for more columns than distinct neighbours fills up with the next closest
    more = closest_per_neighbour(result, 6)
    assert sorted(result.generated_index[more].tolist()) == [4, 9, 9, 9, 21, 33]
    assert np.all(np.diff(result.generated_to_train[more]) >= 0)
    gen_imgs = train_imgs[torch.as_tensor(result.generated_index, dtype=torch.long)]
    fig = neighbours_figure(gen_imgs, train_imgs, result, "label", rows=4)
    heads = [fig.axes[col + 4].get_title() for col in range(4)]
    assert heads[0].startswith("train 9 (x30)") and heads[1].startswith("train 4 (x1)")


# ------------------------------------------------------------------------------ probes


def _probes(scores: dict[str, float]) -> pd.DataFrame:
    rows = []
    for model in ("SSD", "StyleGAN"):
        for space in ("z", "w"):
            for factor, score in scores.items():
                r2 = FACTORS[factor]["kind"] == "continuous"
                rows.append(
                    {
                        "model": model,
                        "space": space,
                        "factor": factor,
                        "metric": "r2" if r2 else "accuracy",
                        "chance": 0.0 if r2 else 0.5,
                        "score": score if (model, space) == ("StyleGAN", "z") else 0.7,
                    }
                )
    return pd.DataFrame(rows)


def test_probe_figure_y_limits_hold_every_bar():
    fig = probe_bar_figure(
        _probes({"muzzle_size": -0.8, "head_rotation_deg": -1.7, "left_ear_up": 0.9}), "label"
    )
    for ax in fig.axes:
        lo, hi = ax.get_ylim()
        for bar in ax.patches:
            ends = (bar.get_y(), bar.get_y() + bar.get_height())
            assert lo <= min(ends) and max(ends) <= hi
    assert fig.axes[1].get_ylim()[0] < -1.7


def test_probe_figure_clips_a_huge_negative_r2_visibly_with_its_value():
    fig = probe_bar_figure(_probes({"muzzle_size": -37.5, "left_ear_up": 0.9}), "label")
    ax = fig.axes[1]
    assert PROBE_FLOOR - 1 < ax.get_ylim()[0] < PROBE_FLOOR  # cut just below the floor
    assert any(t.get_text() == "-37.5" for t in ax.texts)  # the value, written
    assert "cut" in fig._suptitle.get_text()
    assert not any(t.get_text() == "-37.5" for t in fig.axes[0].texts)  # only where cut


# ---------------------------------------------------------------------- spectral figures

PLAIN_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _sigma_run(path, low: float, high: float) -> Run:
    steps = np.arange(1, 51)
    ramp = np.geomspace(low, high, 50)
    return make_run(
        path,
        {
            "step": steps,
            "sigma_raw/l0": ramp,
            "sigma_eff/l0": ramp * 0 + 1,
            "sigma_raw/l1": ramp[::-1],
            "sigma_eff/l1": ramp[::-1],
        },
    )


@pytest.mark.parametrize("low, high", [(0.6, 2.1), (0.9, 1.3), (0.05, 30.0), (1e-3, 400.0)])
def test_sigma_axis_tick_labels_have_one_plain_format(tmp_path, low, high):
    runs = {"SN": _sigma_run(tmp_path / "a", low, high), "no SN": _sigma_run(tmp_path / "b", 1, 2)}
    fig = sigma_figure(runs, "label")
    drawn(fig)
    for k, ax in enumerate(fig.axes):  # the panels share y; only the first one labels it
        lo, hi = ax.get_ylim()
        labels = [
            t.get_text()
            for t in [*ax.yaxis.get_majorticklabels(), *ax.yaxis.get_minorticklabels()]
            if t.get_visible() and t.get_text() and lo <= t.get_position()[1] <= hi
        ]
        assert len(labels) >= (2 if k == 0 else 0), labels
        assert all(PLAIN_NUMBER.match(s) for s in labels), labels  # no 2x10^0, no 1e-2


def _d_history(n: int = 30, gap: bool = True, grad_d: bool = True) -> dict:
    rng = np.random.default_rng(0)
    h = {
        "step": np.arange(1, n + 1),
        "loss_d": rng.random(n),
        "loss_g": rng.random(n),
        "d_real": rng.random(n),
        "d_fake": rng.random(n),
        "d_acc": rng.random(n),
        "grad_norm_g": rng.random(n) * 10,
    }
    if grad_d:
        h["grad_norm_d"] = rng.random(n) * 10
    if gap:
        at = np.full(n, np.nan)
        at[9::10] = 0.5
        h["d_train_eval"], h["d_val_eval"] = at, at - 0.01
    return h


def _has_data(ax) -> bool:
    """A curve with at least one finite point besides the horizontal reference lines."""
    return any(
        np.isfinite(np.asarray(line.get_ydata(), float)).any()
        and len(line.get_xdata()) > 2
        or line.get_marker() == "o"
        for line in ax.lines
    )


def test_discriminator_figure_draws_every_panel_it_makes(tmp_path):
    runs = {
        "SN": make_run(tmp_path / "a", _d_history()),
        "no SN": make_run(tmp_path / "b", _d_history()),
    }
    fig = discriminator_figure(runs, "label")
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 6 and "gradient norm of D's weights" in titles
    assert all(_has_data(ax) and ax.axison for ax in fig.axes), titles


def test_discriminator_figure_says_which_runs_lack_a_statistic_and_drops_absent_ones(tmp_path):
    runs = {
        "SN": make_run(tmp_path / "a", _d_history()),
        "old": make_run(tmp_path / "b", _d_history(gap=False, grad_d=False)),
    }
    fig = discriminator_figure(runs, "label")
    assert len(fig.axes) == 6 and all(_has_data(ax) for ax in fig.axes)
    legends = {
        ax.get_title(): [t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes
    }
    assert legends["gradient norm of D's weights"] == ["SN", "old: not logged"]
    assert legends["D(train reals) - D(val reals), eval mode"] == [
        "SN",
        "old: not logged (no val split?)",
    ]
    assert legends["D accuracy"] == ["SN", "old"]
    # No run logged them: no panel at all, and the figure says what is missing.
    only_old = discriminator_figure({"old": runs["old"]}, "label")
    assert len(only_old.axes) == 4 and all(_has_data(ax) for ax in only_old.axes)
    missing = only_old._suptitle.get_text()
    assert "gradient norm of D" in missing and "val reals" in missing


# ---------------------------------------------------------------------- data factors


def _embedded_like(tmp_path, n: int = 120):
    """A prepared dataset with the embedded data's ten factors (random pixels)."""
    rng = np.random.default_rng(0)
    split = ImageSplit(
        torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8),
        torch.from_numpy(sample_factors(n, rng)),
        list(FACTOR_NAMES),
    )
    write_prepared("emb", {"train": split}, {"kind": "test"}, root=tmp_path / "d")
    return load_prepared("emb", root=tmp_path / "d")


def test_factor_figure_has_a_panel_per_factor_including_the_continuous_ones(tmp_path):
    ds = _embedded_like(tmp_path)
    fig = factor_figure(ds, "label", bins=12)
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert titles == FACTOR_NAMES  # every factor, in column order, no spare axis
    for ax, name in zip(fig.axes, FACTOR_NAMES, strict=True):
        desc = FACTORS[name]
        if desc["kind"] == "continuous":
            assert len(ax.patches) == 12 and ax.get_xlim() == tuple(desc["range"])
            assert sum(p.get_height() for p in ax.patches) == pytest.approx(1.0)  # shares
        else:
            assert len(ax.patches) == desc["n_classes"]


def test_factor_figure_draws_unknown_factors_as_continuous(tiny_dataset):
    fig = factor_figure(tiny_dataset, "label")
    assert [ax.get_title() for ax in fig.axes] == ["a\n(continuous)", "b\n(continuous)"]
    assert all(len(ax.patches) == 20 for ax in fig.axes)


# ------------------------------------------------------------------- sample diversity


def test_diversity_warning_marker_has_a_colour_no_run_uses(tmp_path):
    steps = np.arange(1, 101)
    div = np.where(steps % 25 == 0, 0.05, np.nan)
    runs = {}
    for i in range(11):  # more runs than palette colours
        warnings = [{"kind": "d_collapse", "step": 60}] if i in (3, 10) else []  # not logged
        runs[f"run{i}"] = make_run(
            tmp_path / f"r{i}", {"step": steps, "sample_diversity": div * (i + 1)}, warnings
        )
    fig = diversity_figure(runs, 0.2, "label", key="sample_diversity")
    assert "sees total collapse only" in fig.axes[0].get_title()
    ax = fig.axes[0]
    marks = [ln for ln in ax.lines if ln.get_marker() == "x"]
    curves = [ln for ln in ax.lines if ln.get_marker() != "x"]
    assert len(marks) == 2 and all(len(m.get_xdata()) == 1 for m in marks)
    assert [m.get_xdata()[0] for m in marks] == [60.0, 60.0]  # drawn between logged steps
    warn = {to_rgba(m.get_color()) for m in marks}
    assert len(warn) == 1 and not warn & {to_rgba(c.get_color()) for c in curves}
    # Not merely another shade of a run's colour: pure red next to tab10's red would pass
    # the line above, and a reader could not tell them apart.
    w = np.array(next(iter(warn))[:3])
    gaps = [np.linalg.norm(w - np.array(to_rgba(c.get_color())[:3])) for c in curves]
    assert min(gaps) > 0.3
    styles = {
        (to_rgba(c.get_color()), c.get_linestyle())
        for c in curves
        if c.get_label() != "training images"
    }
    assert len(styles) == 11  # every run tellable from every other
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "trainer warning (2)" in legend
    assert "red" not in ax.get_title()


def test_a_run_that_did_not_log_the_structural_spread_gets_it_from_its_grids_or_generator(
    tmp_path,
):
    from conftest import train_smoke_run

    from ssd_lib.generation.sampling import fixed_codes, generate
    from ssd_lib.training.health import structural_diversity

    run, _ = train_smoke_run(tmp_path)
    history = run.path / "history.csv"  # as runs trained before the trainer logged it
    frame = pd.read_csv(history)
    frame.drop(columns=["structural_diversity"], errors="ignore").to_csv(history, index=False)
    steps, values, source = diversity_curve(run)
    assert source == "grids" and len(steps) == len(run.sample_grids()) >= 1
    final = structural_diversity(
        generate(run.load_generator(), fixed_codes(run.config), run.config.real_range)
    )
    assert values[-1] == pytest.approx(final, abs=1e-6)  # the last grid: the final generator
    # A grid that no longer splits into the trainer's layout is left out, with a warning.
    from PIL import Image

    (good,) = run.sample_grids()  # the smoke run's one grid, at its last step
    bad = good.parent / "step_000001.png"
    Image.new("RGB", (50, 50)).save(bad)
    with pytest.warns(UserWarning, match=r"step_000001.png left out of the diversity curve"):
        again, again_values, source = diversity_curve(run)
    assert source == "grids" and again.tolist() == steps.tolist()
    assert again_values.tolist() == values.tolist()
    good.write_bytes(b"\x89PNG truncated")  # none left to read: the next source, not an empty curve
    with pytest.warns(UserWarning, match="left out of the diversity curve"):
        assert diversity_curve(run)[2] == "final"
    for grid in run.sample_grids():  # no grids kept: one point, the final generator's
        grid.unlink()
    steps, values, source = diversity_curve(run)
    assert source == "final" and steps.tolist() == [run.status["step"]]
    assert values[0] == pytest.approx(final, abs=1e-6)
    fig = diversity_figure({"old": run}, real=0.2, label="test")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "1 of 1 runs: final generator only (no grids)" in legend


def test_a_published_grid_keeps_16_codes_whose_spread_matches_the_logged_one():
    from ssd_lib.analysis.samples import grid_diversity
    from ssd_lib.experiments.published import load_published

    run = load_published("ssd")  # its grids: the top-left 4x4 of the trainer's 64 codes
    assert run.grid_layout() == (16, 4)
    steps, values = grid_diversity(run, "sample_diversity")
    h = run.history()
    logged = dict(zip(h["step"], h["sample_diversity"], strict=True))
    assert len(steps) == 7
    # 16 codes against the 64 logged: close, not equal (measured: within 0.011)
    assert values == pytest.approx([logged[s] for s in steps], abs=0.015)


def test_a_warning_between_logged_steps_sits_on_the_line_the_log_axis_draws():
    from ssd_lib.analysis.samples import _on_line

    steps, values = np.array([10.0, 20.0, 30.0]), np.array([0.1, 0.4, 0.0])
    at = np.array([5.0, 15.0, 25.0, 40.0])
    y = _on_line(at, steps, values)
    # flat before the first step; geometric mid-point 0.2 (not the linear 0.25) between two
    # positive values; linear next to a 0 (no log there); flat after the last step
    assert y == pytest.approx([0.1, 0.2, 0.2, 0.0])
