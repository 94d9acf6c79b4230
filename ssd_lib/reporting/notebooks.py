"""Running the numbered notebooks with papermill, and checking their parameters.

``run_notebooks`` executes ``notebooks/NN_*.ipynb`` in order with the given parameters (the
first code cell of each is tagged ``parameters``), writing the executed notebook in place (so
the committed notebooks carry the outputs of the default run) or into another folder.
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssd_lib.config import PROFILES
from ssd_lib.experiments.suite import DEFAULT_TRAIN_SEED, RUN_SOURCES
from ssd_lib.utils.errors import SSDError

log = logging.getLogger(__name__)

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
DEFAULTS: dict[str, Any] = {
    "dataset": "embedded",
    "profile": "quick",
    "sample_seed": 0,
    "device": "auto",
    "out_dir": "../figures",
}


class NotebookParameterError(SSDError, ValueError):
    """A notebook parameter has the wrong type or value."""


def parameter_error(name: str, value: Any, allowed: str) -> NotebookParameterError:
    """The error for notebook parameter ``name``: its value, its type and what is allowed."""
    return NotebookParameterError(
        f"parameter {name}={value!r} (type {type(value).__name__}) is invalid; allowed: {allowed}"
    )


def check_parameters(
    dataset: Any,
    profile: Any,
    sample_seed: Any,
    device: Any,
    out_dir: Any,
    *,
    run_source: Any = "local",
    train_seed: Any = DEFAULT_TRAIN_SEED,
) -> dict:
    """Validate the common notebook parameters; called in every notebook's second cell, so a
    bad papermill ``-p`` fails there with a message naming the parameter.

    ``sample_seed`` picks the latent codes a notebook draws its samples from; it does not
    change which networks are trained: ``train_seed`` does. ``run_source="published"`` reads
    the committed paper-budget runs, ``"local"`` trains (or reuses) runs under ``profile``."""

    def bad(name: str, value: Any, allowed: str) -> None:
        raise parameter_error(name, value, allowed)

    if not isinstance(dataset, str) or not dataset:
        bad("dataset", dataset, "a str: 'embedded', 'afhq', a folder path or a dataset name")
    if not isinstance(profile, str) or profile not in PROFILES:
        bad("profile", profile, f"a str, one of {list(PROFILES)}")
    if not isinstance(sample_seed, int) or isinstance(sample_seed, bool) or sample_seed < 0:
        bad("sample_seed", sample_seed, "an integer >= 0 (int)")
    if run_source not in RUN_SOURCES:
        bad("run_source", run_source, f"a str, one of {list(RUN_SOURCES)}")
    if not isinstance(train_seed, int) or isinstance(train_seed, bool) or train_seed < 0:
        bad("train_seed", train_seed, "an integer >= 0 (int)")
    if not isinstance(device, str) or not (
        device in ("auto", "cpu", "mps") or re.fullmatch(r"cuda(:\d+)?", device)
    ):
        bad("device", device, "a str: 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")
    if not isinstance(out_dir, str) or not out_dir:
        bad("out_dir", out_dir, "a folder path as a non-empty str")
    return {
        "dataset": dataset,
        "profile": profile,
        "sample_seed": sample_seed,
        "device": device,
        "out_dir": out_dir,
        "run_source": run_source,
        "train_seed": train_seed,
    }


FAILED_DIR = ".failed"  # executed copies of notebooks that raised, for reading the error


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def list_notebooks(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in run order."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(
    parameters: dict[str, Any] | None = None,
    names: list[str] | None = None,
    output_dir: str | Path | None = None,
    folder: str | Path = NOTEBOOK_DIR,
    progress: bool = True,
    kernel_name: str = "python3",
    stream_output: bool = False,
) -> list[Path]:
    """Execute notebooks in order; returns the executed notebooks' paths.

    ``output_dir=None`` overwrites each notebook with its executed copy. Papermill runs each
    with its own folder as the working directory, so ``out_dir`` is relative to
    ``notebooks/``. ``stream_output`` also logs what the cells print (training progress bars
    included, redrawn at most every 15 s) while they run, for long runs in a terminal.
    """
    params = {**DEFAULTS, **(parameters or {})}
    notebooks = list_notebooks(folder)
    if names is not None:
        unknown = sorted(set(names) - {p.name for p in notebooks})
        if unknown:
            raise ValueError(f"unknown notebooks {unknown}; known: {[p.name for p in notebooks]}")
        notebooks = [p for p in notebooks if p.name in names]
    outputs = []
    for nb in notebooks:
        out = nb if output_dir is None else Path(output_dir) / nb.name
        parameters = {**params, "notebook": nb.name}
        outputs.append(execute(nb, out, parameters, kernel_name, progress, stream_output))
    return outputs


@contextmanager
def _kernel_environment(stream_output: bool):
    """What the kernels inherit: text progress bars (ssd_lib.utils.progress), at most one update
    every 15 s when they are streamed to the terminal."""
    env = {"SSD_PROGRESS": "text"} | ({"TQDM_MININTERVAL": "15"} if stream_output else {})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(
    nb: str | Path,
    out: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    kernel_name: str = "python3",
    progress: bool = True,
    stream_output: bool = False,
) -> Path:
    """Execute one notebook with papermill in its own folder and write the executed copy to
    ``out`` (default: over ``nb``) with one parameters cell; returns ``out``."""
    import papermill as pm

    nb = Path(nb)
    out = nb if out is None else Path(out)
    params = dict(parameters or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    # Papermill saves its output after every cell; it writes to a scratch copy so that the
    # notebook is replaced only by a complete run. A failed run's copy (with the error in
    # it) is kept in .failed/ next to it.
    scratch = out.parent / f".{out.stem}.running.ipynb"
    t = time.perf_counter()
    log.info("executing %s with %s", nb.name, params)
    try:
        with _kernel_environment(stream_output):
            pm.execute_notebook(
                _rel(nb),  # relative paths: papermill stores them in the notebook
                _rel(scratch),
                parameters=params,
                cwd=str(nb.parent),
                kernel_name=kernel_name,
                progress_bar=progress,
                log_output=stream_output,
            )
    except BaseException:
        if scratch.is_file():
            failed = out.parent / FAILED_DIR / out.name
            failed.parent.mkdir(exist_ok=True)
            os.replace(scratch, failed)
            log.error("%s failed; its executed copy, with the error, is %s", nb.name, failed)
        raise
    _finish(scratch, out)
    log.info("%s done in %.1f s", nb.name, time.perf_counter() - t)
    return out


_ASSIGN = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.*?)(?P<comment>\s+#.*)?$")


def merge_parameter_cells(nb: Any) -> Any:
    """Fold papermill's ``injected-parameters`` cell into the ``parameters`` cell.

    Papermill adds the values it ran with as a second cell; a reader who edits the first one
    and runs all would get the second one's values back. The executed notebook keeps one cell:
    the ``parameters`` cell with the values of this run (comments kept). Returns ``nb``."""
    cells = nb["cells"]
    tagged = [
        i for i, c in enumerate(cells) if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    if not tagged:
        return nb
    injected = cells[tagged[0]]
    values = {}
    for line in "".join(injected["source"]).splitlines():
        m = _ASSIGN.match(line)
        if m:
            values[m["name"]] = m["value"]
    home = next((c for c in cells if "parameters" in c["metadata"].get("tags", [])), None)
    if home is None:  # papermill put the injected cell first: it becomes the parameters cell
        injected["metadata"]["tags"] = ["parameters"]
        return nb
    lines = []
    for line in "".join(home["source"]).splitlines():
        m = _ASSIGN.match(line)
        if m and m["name"] in values:
            line = f"{m['name']} = {values.pop(m['name'])}{m['comment'] or ''}"
        lines.append(line)
    lines += [f"{name} = {value}" for name, value in values.items()]  # passed but not declared
    home["source"] = "\n".join(lines)
    del cells[tagged[0]]
    return nb


def _last_state(text: str) -> str:
    """What a terminal would show of ``text``: on each line, what the last carriage return
    left (a progress bar's final state)."""
    lines = []
    for line in text.split("\n"):
        pieces = [p for p in line.split("\r") if p]
        lines.append(pieces[-1] if pieces else "")
    return "\n".join(lines)


def collapse_progress_output(nb: Any) -> Any:
    """Join each cell's consecutive outputs of one stream and keep only the final state of
    every progress bar in them: a kernel sends a bar as dozens of ``\r``-separated updates,
    which papermill stores one by one. Returns ``nb``."""
    for cell in nb["cells"]:
        merged: list[Any] = []
        for out in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if (
                out.get("output_type") == "stream"
                and prev is not None
                and prev.get("output_type") == "stream"
                and prev["name"] == out["name"]
            ):
                prev["text"] = "".join(prev["text"]) + "".join(out["text"])
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream" and "\r" in "".join(out["text"]):
                out["text"] = _last_state("".join(out["text"]))
        if "outputs" in cell:
            cell["outputs"] = merged
    return nb


def _finish(scratch: Path, out: Path) -> None:
    """Give the executed copy its final name, inside it (papermill's metadata) and on disk,
    with one parameters cell and progress bars in their final state."""
    import nbformat

    from ssd_lib.utils.atomic import atomic_write_text

    executed = merge_parameter_cells(nbformat.read(scratch, as_version=4))
    collapse_progress_output(executed)
    executed.metadata.setdefault("papermill", {})["output_path"] = _rel(out)
    atomic_write_text(out, nbformat.writes(executed))  # as papermill writes it
    scratch.unlink()
