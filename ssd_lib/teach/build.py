"""One lesson source, two notebooks: the student's (exercises stubbed) and the teacher's.

    python -m ssd_lib.teach.build lessons/gan_class.py build/
    # -> build/student/gan_class.ipynb and build/teacher/gan_class.ipynb

The source is a percent-format Python file (the subset of jupytext's format used here) or a
notebook. In the percent format a line ``# %%`` starts a code cell and ``# %% [markdown]`` a
Markdown cell whose lines are comments (``# `` is stripped). After the marker, ``key=value``
pairs give cell metadata, the value in JSON: ``# %% tags=["solution"]``,
``# %% tags=["solution"] hint="normalise per sample and channel, then scale and shift"``.

Tags that the builder acts on:

- ``solution``: the student gets every function in the cell with its signature and docstring
  kept and its body replaced by ``raise NotImplementedError("write this: <hint>")``; the hint
  is the cell's ``hint`` metadata, else the docstring's first line. Such a cell may hold only
  imports, comments and function definitions. The teacher gets the cell as written.
- ``teacher``: only in the teacher's notebook (notes, expected answers).
- ``student``: only in the student's notebook (e.g. "run the check below").

In a notebook source the same tags and ``hint`` go in each cell's metadata; the teacher's
notebook keeps them, so it is itself a source that rebuilds the same student notebook (less
any ``student`` cells). Other tags (``parameters`` for papermill) pass through.

A stubbed function does nothing until called, so the student's notebook runs from top to
bottom; its check cell then shows one line, "not written yet", until the exercise is done.
Output is deterministic (cell ids are numbered), so rebuilding an unchanged source rewrites
identical files.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssd_lib.utils.atomic import atomic_write_text
from ssd_lib.utils.errors import SSDError

MARKER = re.compile(r"^# %%(?P<rest>.*)$")
MARKDOWN = re.compile(r"\[(markdown|md)\]")
META = re.compile(r"(\w+)=(\"(?:[^\"\\]|\\.)*\"|\[[^\]]*\]|\S+)")


class BuildError(SSDError, ValueError):
    """The lesson source cannot be built; the message names the file, the line and the fix."""


@dataclass
class Cell:
    """One cell of a lesson: ``kind`` is "code" or "markdown"; its source starts at line
    ``line`` of ``where`` (the file, or "<file> cell <n>" for a notebook)."""

    kind: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 1
    where: str = "<lesson>"

    @property
    def tags(self) -> list[str]:
        return list(self.metadata.get("tags", []))


def parse_percent(text: str, name: str = "<lesson>") -> list[Cell]:
    """Cells of a percent-format source (see the module docstring)."""
    cells: list[Cell] = []
    current: Cell | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            while lines and not lines[0].strip():  # the cell starts at its first text line
                lines.pop(0)
                current.line += 1
            body = "\n".join(lines).rstrip("\n")
            if current.kind == "markdown":
                body = "\n".join(_uncomment(line) for line in body.splitlines())
            current.source = body
            cells.append(current)

    for number, line in enumerate(text.splitlines(), start=1):
        match = MARKER.match(line)
        if match:
            close()
            current, lines = _header(match.group("rest"), name, number), []
        elif current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                raise BuildError(
                    f"{name}:{number}: code before the first '# %%' cell marker; start the "
                    f"file with '# %%' (or '# %% [markdown]')"
                )
        else:
            lines.append(line)
    close()
    return cells


def _header(rest: str, name: str, number: int) -> Cell:
    kind = "markdown" if MARKDOWN.search(rest) else "code"
    metadata: dict[str, Any] = {}
    for key, raw in META.findall(MARKDOWN.sub("", rest)):
        try:
            metadata[key] = json.loads(raw)
        except json.JSONDecodeError:
            raise BuildError(
                f"{name}:{number}: metadata {key}={raw} is not JSON; write e.g. "
                f'tags=["solution"] hint="..." (double quotes, no spaces inside lists)'
            ) from None
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BuildError(f"{name}:{number}: tags must be a JSON list of strings, got {tags!r}")
    return Cell(kind, "", metadata, number + 1, name)


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    return line[1:] if line.startswith("#") else line


def read_notebook(path: Path) -> list[Cell]:
    """Cells of an ``.ipynb`` source; tags are read from each cell's metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [
        Cell(c.cell_type, c.source, dict(c.get("metadata", {})), 1, f"{path} cell {i}")
        for i, c in enumerate(nb.cells, start=1)
        if c.cell_type in ("code", "markdown")
    ]


def stub_solution(
    source: str, hint: str | None = None, where: str = "<cell>", first_line: int = 1
) -> str:
    """The student's version of a solution cell: each function's body becomes
    ``raise NotImplementedError("write this: ...")``; signatures, docstrings, imports and
    comments outside the functions stay. Errors name ``where:line``, counting the cell's
    first line as ``first_line``."""

    def at(lineno: int) -> str:
        return f"{where}:{lineno + first_line - 1}"

    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise BuildError(f"{at(err.lineno or 1)}: the solution does not parse: {err.msg}") from None
    lines = source.splitlines()
    functions = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions.append(node)
        elif not isinstance(node, ast.Import | ast.ImportFrom):
            raise BuildError(
                f"{at(node.lineno)}: a solution cell may hold only imports and "
                f"function definitions, found {type(node).__name__} "
                f"({lines[node.lineno - 1].strip()[:60]!r}); move it to a code cell of its own"
            )
    if not functions:
        raise BuildError(f"{at(1)}: a solution cell must define at least one function")
    for node in reversed(functions):  # from the bottom, so earlier line numbers stay valid
        body = node.body
        doc = ast.get_docstring(node, clean=True)
        has_doc = doc is not None
        first = body[0]
        if first.lineno == node.lineno:
            raise BuildError(f"{at(node.lineno)}: put the body of {node.name}() on its own lines")
        keep_to = first.end_lineno if has_doc else first.lineno - 1  # last line kept, 1-based
        indent = " " * first.col_offset
        text = hint or (doc.splitlines()[0] if has_doc else f"the body of {node.name}()")
        stub = f"{indent}raise NotImplementedError({('write this: ' + text)!r})"
        lines[keep_to : node.end_lineno] = [stub]
    return "\n".join(lines)


def split_lesson(cells: list[Cell], name: str = "<lesson>") -> dict[str, list[Cell]]:
    """{"student": cells, "teacher": cells} from one lesson."""
    out: dict[str, list[Cell]] = {"student": [], "teacher": []}
    for cell in cells:
        tags = cell.tags
        if "teacher" not in tags:
            student = Cell(cell.kind, cell.source, dict(cell.metadata), cell.line, cell.where)
            if "solution" in tags:
                if cell.kind != "code":
                    raise BuildError(f"{cell.where}:{cell.line}: only code cells can be solutions")
                hint = cell.metadata.get("hint")
                student.source = stub_solution(cell.source, hint, cell.where, cell.line)
                student.metadata["tags"] = ["exercise" if t == "solution" else t for t in tags]
            student.metadata.pop("hint", None)
            out["student"].append(student)
        if "student" not in tags:
            # The teacher's keeps the hints, so it is itself a source for the same build.
            out["teacher"].append(
                Cell(cell.kind, cell.source, dict(cell.metadata), cell.line, cell.where)
            )
    if not any("solution" in c.tags for c in cells):
        raise BuildError(f"{name}: no cell is tagged solution, so both notebooks would be equal")
    return out


def to_notebook(cells: list[Cell]) -> Any:
    """An nbformat v4 notebook with numbered cell ids and no outputs."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(cells):
        metadata = {k: v for k, v in cell.metadata.items() if k != "tags" or v}
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.source, metadata=metadata)
        else:
            new = nbformat.v4.new_code_cell(cell.source, metadata=metadata)
        new["id"] = f"cell-{i:03d}"
        nb.cells.append(new)
    nbformat.validate(nb)
    return nb


def build(source: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir/student/<stem>.ipynb`` and ``out_dir/teacher/<stem>.ipynb``."""
    import nbformat

    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise BuildError(f"lesson source {source} does not exist")
    if source.suffix == ".ipynb":
        cells = read_notebook(source)
    elif source.suffix == ".py":
        cells = parse_percent(source.read_text(encoding="utf-8"), str(source))
    else:
        raise BuildError(f"lesson source {source}: expected a percent-format .py or an .ipynb")
    paths = {}
    for role, role_cells in split_lesson(cells, str(source)).items():
        path = out_dir / role / f"{source.stem}.ipynb"
        atomic_write_text(path, nbformat.writes(to_notebook(role_cells)))
        paths[role] = path
    return paths


def part_durations(notebook: str | Path) -> dict[str, float]:
    """Seconds each part of an executed lesson took: papermill's per-cell durations summed
    from one ``## `` heading of a Markdown cell to the next ("setup" before the first)."""
    import nbformat

    nb = nbformat.read(Path(notebook), as_version=4)
    part, totals = "setup", {"setup": 0.0}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^## (.+)$", cell.source, re.M)
            if heading:
                part = heading.group(1).strip()
                totals.setdefault(part, 0.0)
        totals[part] += float(cell.metadata.get("papermill", {}).get("duration") or 0.0)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.teach.build",
        description="Build the student and teacher notebooks from one lesson source.",
    )
    parser.add_argument("source", help="lesson source: a percent-format .py or an .ipynb")
    parser.add_argument("out_dir", help="writes OUT_DIR/student/<name>.ipynb and teacher/")
    parser.add_argument(
        "--execute-teacher",
        action="store_true",
        help="then run the teacher's notebook with papermill (in its folder) and keep its "
        "outputs; the student's stays unexecuted",
    )
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter for the execution, the value as Python (e.g. -p TRAIN_SECONDS 60)",
    )
    args = parser.parse_args(argv)
    try:
        parameters = {name: ast.literal_eval(value) for name, value in args.p}
    except (ValueError, SyntaxError) as err:
        print(f"build: error: a -p value is not a Python literal ({err})", file=sys.stderr)
        return 2
    try:
        paths = build(args.source, args.out_dir)
    except BuildError as err:
        print(f"build: error: {err}", file=sys.stderr)
        return 2
    for role, path in paths.items():
        print(f"{role}: {path}")
    if args.execute_teacher:
        from ssd_lib.reporting.notebooks import execute

        t = time.perf_counter()
        execute(paths["teacher"], parameters=parameters, stream_output=True)
        print(f"teacher: executed in {time.perf_counter() - t:.0f} s; its cells, per part:")
        for part, seconds in part_durations(paths["teacher"]).items():
            print(f"{seconds:8.1f} s  {part}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
