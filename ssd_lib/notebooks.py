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
from pathlib import Path
from typing import Any

from ssd_lib.config import PROFILES

log = logging.getLogger(__name__)

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
DEFAULTS: dict[str, Any] = {
    "dataset": "embedded",
    "profile": "quick",
    "seed": 0,
    "device": "auto",
    "out_dir": "../figures",
}


class NotebookParameterError(ValueError):
    """A notebook parameter has the wrong type or value."""


def check_parameters(dataset: Any, profile: Any, seed: Any, device: Any, out_dir: Any) -> dict:
    """Validate the common notebook parameters; called in every notebook's second cell, so a
    bad papermill ``-p`` fails there with a message naming the parameter."""

    def bad(name: str, value: Any, allowed: str) -> None:
        raise NotebookParameterError(
            f"parameter {name}={value!r} (type {type(value).__name__}) is invalid; "
            f"allowed: {allowed}"
        )

    if not isinstance(dataset, str) or not dataset:
        bad("dataset", dataset, "a str: 'embedded', 'afhq', a folder path or a dataset name")
    if not isinstance(profile, str) or profile not in PROFILES:
        bad("profile", profile, f"a str, one of {list(PROFILES)}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        bad("seed", seed, "an integer >= 0 (int)")
    if not isinstance(device, str) or not (
        device in ("auto", "cpu", "mps") or re.fullmatch(r"cuda(:\d+)?", device)
    ):
        bad("device", device, "a str: 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")
    if not isinstance(out_dir, str) or not out_dir:
        bad("out_dir", out_dir, "a folder path as a non-empty str")
    return {
        "dataset": dataset,
        "profile": profile,
        "seed": seed,
        "device": device,
        "out_dir": out_dir,
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
    # The kernels inherit these: text progress bars (ssd_lib.progress), at most one update
    # every 15 s when they are streamed to the terminal.
    env = {"SSD_PROGRESS": "text"} | ({"TQDM_MININTERVAL": "15"} if stream_output else {})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for nb in notebooks:
            outputs.append(_execute(nb, output_dir, params, kernel_name, progress, stream_output))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return outputs


def _execute(
    nb: Path,
    output_dir: str | Path | None,
    params: dict[str, Any],
    kernel_name: str,
    progress: bool,
    stream_output: bool,
) -> Path:
    import papermill as pm

    out = nb if output_dir is None else Path(output_dir) / nb.name
    out.parent.mkdir(parents=True, exist_ok=True)
    # Papermill saves its output after every cell; it writes to a scratch copy so that the
    # notebook is replaced only by a complete run. A failed run's copy (with the error in
    # it) is kept in .failed/ next to it.
    scratch = out.parent / f".{out.stem}.running.ipynb"
    t = time.perf_counter()
    log.info("executing %s with %s", nb.name, params)
    try:
        pm.execute_notebook(
            _rel(nb),  # relative paths: papermill stores them in the notebook
            _rel(scratch),
            parameters={**params, "notebook": nb.name},
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


def _finish(scratch: Path, out: Path) -> None:
    """Give the executed copy its final name, inside it (papermill's metadata) and on disk."""
    import nbformat

    from ssd_lib.atomic import atomic_write_text

    executed = nbformat.read(scratch, as_version=4)
    executed.metadata.setdefault("papermill", {})["output_path"] = _rel(out)
    atomic_write_text(out, nbformat.writes(executed))  # as papermill writes it
    scratch.unlink()
