"""Linear probes and factor directions: how well a latent space encodes each true factor.

The embedded data's factors (ear states, fur colour, head rotation, ...) are predicted from
latent codes with linear models (scikit-learn): accuracy for categorical factors, R^2 for
continuous ones, next to a chance baseline. A factor that a linear probe reads off w but not
off z is what "the mapping network disentangles" means in numbers. ``factor_direction`` turns
a binary factor into a unit vector in the latent space, for walks and the explorer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ssd_lib.analysis.latent import _check_choice
from ssd_lib.data.embedded import FACTORS
from ssd_lib.reporting.plots import PlotFigure, stamp

log = logging.getLogger(__name__)

DIRECTION_METHODS = ("logistic", "mean_diff")
_PROBE_MAX_ITER = 2000  # lbfgs on standardised 100-512-d inputs converges well within this


def _one_blas_thread():
    """Probes this small run faster on one BLAS thread: on a busy 2-core machine, two
    OpenBLAS threads spinning against each other slowed a multinomial fit by orders of
    magnitude. The limit is lifted again when the ``with`` block ends."""
    return threadpool_limits(limits=1, user_api="blas")


def _factor_kind(name: str, y: np.ndarray) -> str:
    if name in FACTORS:
        return FACTORS[name]["kind"]
    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        return "binary" if len(np.unique(y)) <= 2 else "categorical"
    return "continuous"


def probe_factors(
    latents: np.ndarray | torch.Tensor,
    labels: Mapping[str, np.ndarray],
    test_fraction: float = 0.3,
    seed: int = 0,
) -> pd.DataFrame:
    """Linear probes from latents (N, D) to each factor's labels (N,), one row per factor.

    Binary/categorical factors: logistic regression on standardised inputs, ``score`` = test
    accuracy, ``chance`` = share of the test split's most common class. Continuous factors:
    ridge regression, ``score`` = test R^2, ``chance`` = 0. One random split (``seed``) is used
    for all factors. A factor with a single class is reported with status "skipped", score NaN.
    """
    x = np.asarray(latents, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"latents must have shape (N, D), got {x.shape}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} must be in (0, 1)")
    n = len(x)
    n_test = int(round(n * test_fraction))
    if not 0 < n_test < n:
        raise ValueError(f"test_fraction={test_fraction!r} leaves an empty split of {n} samples")
    perm = np.random.default_rng(seed).permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    rows = []
    with _one_blas_thread():
        for name, y in labels.items():
            rows.append(_probe_one(x, name, np.asarray(y), train, test))
    columns = ["factor", "kind", "metric", "score", "chance", "n_train", "n_test", "n_classes"]
    return pd.DataFrame(rows, columns=[*columns, "status"])


def _probe_one(
    x: np.ndarray, name: str, y: np.ndarray, train: np.ndarray, test: np.ndarray
) -> dict:
    """One row of ``probe_factors``."""
    if y.shape != (len(x),):
        raise ValueError(f"labels[{name!r}] has shape {y.shape}; expected ({len(x)},)")
    kind = _factor_kind(name, y)
    row = {"factor": name, "kind": kind, "n_train": len(train), "n_test": len(test)}
    if kind == "continuous":
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x[train], y[train])
        score = r2_score(y[test], model.predict(x[test]))
        return {
            **row,
            "metric": "r2",
            "score": float(score),
            "chance": 0.0,
            "n_classes": 0,
            "status": "ok",
        }
    n_classes = len(np.unique(y))
    row.update(metric="accuracy", n_classes=n_classes)
    if n_classes < 2 or len(np.unique(y[train])) < 2:
        log.info("probe: factor %s has a single class in the samples; skipped", name)
        return {**row, "score": np.nan, "chance": np.nan, "status": "skipped: a single class"}
    clf = LogisticRegression(max_iter=_PROBE_MAX_ITER)
    model = make_pipeline(StandardScaler(), clf).fit(x[train], y[train])
    counts = np.unique(y[test], return_counts=True)[1]
    accuracy = float((model.predict(x[test]) == y[test]).mean())
    return {**row, "score": accuracy, "chance": float(counts.max() / len(test)), "status": "ok"}


def probe_spaces(
    model: str,
    spaces: Mapping[str, np.ndarray | torch.Tensor | None],
    labels: Mapping[str, np.ndarray],
    test_fraction: float = 0.3,
    seed: int = 0,
) -> pd.DataFrame:
    """``probe_factors`` for each latent space, e.g. {"z": z, "w": w}, with columns ``model``
    and ``space`` in front; spaces given as None (DCGAN's w) are left out. Concatenate the
    tables of several models for ``probe_bar_figure``."""
    tables = [
        probe_factors(x, labels, test_fraction, seed).assign(model=model, space=space)
        for space, x in spaces.items()
        if x is not None
    ]
    df = pd.concat(tables, ignore_index=True)
    return df[["model", "space", *[c for c in df.columns if c not in ("model", "space")]]]


PROBE_FLOOR = -2.0  # R^2 below this is clipped in the bar figure, with its value written


def _probe_ylim(probes: pd.DataFrame, floor: float = PROBE_FLOOR) -> tuple[float, float, bool]:
    """(bottom, top, clipped): limits that hold every bar and chance tick, unless a score is
    below ``floor``; then the axis stops just under ``floor`` and ``clipped`` is True."""
    values = pd.concat([probes["score"], probes["chance"]]).to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    lo = min(0.0, float(values.min())) if len(values) else 0.0
    hi = max(1.0, float(values.max())) if len(values) else 1.0
    clipped = lo < floor
    lo = max(lo, floor)
    margin = 0.05 * (hi - lo)
    return lo - (2 * margin if clipped else margin if lo < 0 else 0.0), hi + margin, clipped


def probe_bar_figure(probes: pd.DataFrame, label: str) -> Figure:
    """Grouped bars from (concatenated) ``probe_spaces`` tables: one panel per model, factors
    along x, one bar per space; black ticks mark chance. Skipped factors say "skipped".

    The y-axis holds every bar, also a strongly negative R^2 (a probe worse than predicting
    the mean). Only a score below ``PROBE_FLOOR`` is cut, visibly: a black triangle marks
    the bar at the axis bottom, its value is written on it, and a line above the panels says
    so."""
    models = list(dict.fromkeys(probes["model"]))
    factors = list(dict.fromkeys(probes["factor"]))
    spaces = list(dict.fromkeys(probes["space"]))
    metric = probes.groupby("factor")["metric"].first()
    fig = PlotFigure(figsize=(max(6.0, 0.9 * len(factors) + 1), 2.4 * len(models) + 1))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(len(models), 1, sharex=True, squeeze=False)[:, 0]
    x, width = np.arange(len(factors)), 0.8 / len(spaces)
    low, high, clipped = _probe_ylim(probes)
    for ax, model in zip(axes, models, strict=True):
        sub = probes[probes["model"] == model]
        for k, space in enumerate(spaces):
            s = sub[sub["space"] == space].set_index("factor").reindex(factors)["score"]
            xs = x + (k - (len(spaces) - 1) / 2) * width
            ax.bar(xs, s, width, label=space, color=f"C{k}")
            for xi, v in zip(xs, s.to_numpy(dtype=float), strict=True):
                if v < low:  # cut by the axis: say so, with the value
                    ax.plot(xi, low, marker="v", ms=7, color="k", clip_on=False, zorder=5)
                    ax.annotate(
                        f"{v:.3g}",
                        (xi, low),
                        xytext=(0, 6),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        rotation=90,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
                    )
        measured = sub.groupby("factor")["score"].count().reindex(factors, fill_value=0)
        for i in np.flatnonzero(measured.to_numpy() == 0):
            ax.text(x[i], 0.03, "skipped", ha="center", fontsize=7, color="0.4")
        chance = sub.groupby("factor")["chance"].first().reindex(factors)
        ax.hlines(chance, x - 0.45, x + 0.45, colors="k", lw=1.2, label="chance")
        ax.set(title=model, ylim=(low, high), ylabel="test accuracy / R$^2$")
        ax.axhline(0, color="0.6", lw=0.6)
    axes[0].legend(loc="upper right", fontsize=8, ncols=len(spaces) + 1)
    if clipped:
        fig.suptitle(
            f"R$^2$ below the axis bottom ({low:.2f}) is cut there (black triangle), its value "
            "written on the bar",
            fontsize=8,
        )
    ticks = [f"{f}\n({'R²' if metric[f] == 'r2' else 'acc'})" for f in factors]
    axes[-1].set_xticks(x, ticks, rotation=35, ha="right", fontsize=8)
    return stamp(fig, label)


# ------------------------------------------------------------------------ factor directions


def _binary_labels(labels: np.ndarray | torch.Tensor, n: int) -> np.ndarray:
    y = np.asarray(labels).astype(np.int64)
    if y.shape != (n,) or not set(np.unique(y)) == {0, 1}:
        raise ValueError(
            f"binary_labels must be (N,) = ({n},) with both classes 0 and 1 present, got shape "
            f"{y.shape} with values {np.unique(y)[:10].tolist()}"
        )
    return y


def factor_direction(
    latents: np.ndarray | torch.Tensor,
    binary_labels: np.ndarray | torch.Tensor,
    method: str = "logistic",
) -> torch.Tensor:
    """Unit vector (D,) float32 in the latents' space, pointing from class 0 towards class 1.

    "logistic": the normal of a logistic-regression boundary (the direction that changes the
    class fastest); "mean_diff": the difference of the class means (moves the average class-0
    code onto the average class-1 code; equal to the normal when the latents are isotropic).
    """
    _check_choice("method", method, DIRECTION_METHODS)
    x = np.asarray(latents, dtype=np.float64)
    y = _binary_labels(binary_labels, len(x))
    if method == "logistic":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=_PROBE_MAX_ITER))
        with _one_blas_thread():
            model.fit(x, y)
        # The boundary is coef . (x - mean) / scale = c, so its normal in latent units is
        # coef / scale; without the division the direction would be in standardised units.
        d = model[-1].coef_[0] / model[0].scale_
    else:
        d = x[y == 1].mean(0) - x[y == 0].mean(0)
    return torch.from_numpy(d / np.linalg.norm(d)).float()


def direction_accuracy(
    latents: np.ndarray | torch.Tensor,
    binary_labels: np.ndarray | torch.Tensor,
    direction: torch.Tensor | np.ndarray,
) -> float:
    """Accuracy of the best single cut along ``direction``: how well the projection
    ``latents @ direction`` alone separates the two classes (in [0.5, 1] for balanced
    classes). In-sample; pass latents the direction was not fitted on for a held-out number."""
    x = np.asarray(latents, dtype=np.float64)
    y = _binary_labels(binary_labels, len(x))
    ys = y[np.argsort(x @ np.asarray(direction, dtype=np.float64), kind="stable")]
    # Cut after the k lowest projections (k = 0..N): below is called 0, above is called 1.
    zeros_below = np.concatenate([[0], np.cumsum(ys == 0)])
    ones_above = ys.sum() - np.concatenate([[0], np.cumsum(ys == 1)])
    return float((zeros_below + ones_above).max() / len(y))


# ---------------------------------------------------------------------- paths through space
