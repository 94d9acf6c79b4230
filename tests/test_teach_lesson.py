"""The class notebook (lessons/gan_class.py): it builds, its exercises pass their checks with
the teacher's solutions, and the student's stubs fail them cleanly; and the helpers it calls
(ssd_lib.teach.lesson). Everything runs in-process, without a kernel."""

from __future__ import annotations

import ast
import inspect
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from ssd_lib.teach import lesson, solutions
from ssd_lib.teach.build import build
from ssd_lib.teach.checks import CHECKS

LESSON = Path(__file__).resolve().parents[1] / "lessons" / "gan_class.py"


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    paths = build(LESSON, tmp_path_factory.mktemp("lesson"))
    assert paths["student"].name == paths["teacher"].name == "gan_class.ipynb"
    return {role: nbformat.read(path, as_version=4) for role, path in paths.items()}


def _tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def _run(cells) -> dict:
    """Execute the cells' code in one fresh namespace (exercise cells hold only imports and
    functions, so this runs no lesson code)."""
    namespace: dict = {}
    for i, cell in enumerate(cells):
        exec(compile(cell.source, f"<exercise cell {i}>", "exec"), namespace)
    return namespace


def _functions(cells) -> list[str]:
    return [
        node.name
        for cell in cells
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.FunctionDef)
    ]


def test_the_lesson_builds_a_student_and_a_teacher_notebook(notebooks):
    student, teacher = notebooks["student"], notebooks["teacher"]
    assert _tagged(teacher, "teacher") and not _tagged(student, "teacher")
    assert _tagged(student, "exercise") and not _tagged(student, "solution")
    assert len(_tagged(student, "exercise")) == len(_tagged(teacher, "solution"))
    assert _tagged(teacher, "parameters") and _tagged(student, "parameters")
    for nb in (student, teacher):
        for cell in nb.cells:
            if cell.cell_type == "code":
                ast.parse(cell.source)  # every code cell is valid Python


def test_every_exercise_passes_its_check_with_the_teachers_solution(notebooks):
    solution_cells = _tagged(notebooks["teacher"], "solution")
    names = _functions(solution_cells)
    assert sorted(names) == sorted(CHECKS), "one exercise per check, named as the check expects"
    namespace = _run(solution_cells)
    code = "\n".join(c.source for c in notebooks["teacher"].cells if c.cell_type == "code")
    for name in names:
        check = CHECKS[name]
        assert f"teach.{check.__name__}({name})" in code, f"no check cell for {name}"
        result = check(namespace[name])
        assert result.passed, str(result)


def test_the_student_stubs_raise_with_a_hint_and_their_checks_say_not_written_yet(notebooks):
    namespace = _run(_tagged(notebooks["student"], "exercise"))
    for name, check in CHECKS.items():
        fn = namespace[name]
        n_required = sum(
            p.default is inspect.Parameter.empty for p in inspect.signature(fn).parameters.values()
        )
        with pytest.raises(NotImplementedError, match="write this: .{10,}"):
            fn(*([None] * n_required))
        result = check(fn)
        assert not result.passed and result.mistake == "not_implemented", str(result)
        assert "not written yet" in str(result) and "\n" not in str(result)


def test_every_part_states_its_planned_time(notebooks):
    headers = [
        line
        for c in notebooks["student"].cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    parts = [h for h in headers if h.startswith("## Part ")]
    assert [re.match(r"## Part (\d)\.", h).group(1) for h in parts] == list("12345")
    assert any(h.startswith("## Warm-up") for h in headers)
    for h in headers:
        minutes = re.search(r"planned: (\d+) min", h)
        assert minutes, h
        if h.startswith("## Part "):
            assert 10 <= int(minutes.group(1)) <= 20 and "2-core laptop" in h, h


def test_every_prediction_is_followed_by_the_teachers_expected_answer(notebooks):
    cells = notebooks["teacher"].cells
    predictions = [i for i, c in enumerate(cells) if "**Predict.**" in c.source]
    assert len(predictions) >= 8
    for i in predictions:
        after = cells[i + 1]
        assert "teacher" in after.metadata.get("tags", []) and "**Expected" in after.source
    student = notebooks["student"].cells
    assert not any("**Expected" in c.source for c in student)


# ----- the helpers the lesson calls ---------------------------------------------------------


@pytest.fixture(scope="module")
def ssd_generator():
    from ssd_lib.models import SSDGenerator

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SSDGenerator().eval()


def _stub(*args):
    raise NotImplementedError("write this: a stub")


def _stub4(z, weight, bias, n_layers=4):
    raise NotImplementedError("write this: a stub")


def test_assemble_draws_the_same_images_with_the_solutions(ssd_generator):
    done = lesson.assemble(ssd_generator, solutions.adain, solutions.mapping_forward, n=3)
    assert done.passed and done.max_diff <= 1 and "same dogs" in str(done), str(done)
    assert done.student.shape == done.library.shape == (3, 3, 64, 64)
    skipped = lesson.assemble(ssd_generator, solutions.adain, _stub4, n=2)
    assert skipped.passed and "mapping is not written yet" in str(skipped)
    stub = lesson.assemble(ssd_generator, _stub, _stub4, n=2)
    assert not stub.passed and "not written yet" in str(stub) and stub.student is None

    def no_norm(x, scale, bias):
        return scale[:, :, None, None] * x + bias[:, :, None, None]

    wrong = lesson.assemble(ssd_generator, no_norm, None, n=2)
    assert not wrong.passed and wrong.max_diff > 1 and "\n" not in str(wrong)


def test_the_power_iteration_table_reads_the_sn_layers():
    from ssd_lib.models import Discriminator

    with torch.random.fork_rng():
        torch.manual_seed(0)
        d = Discriminator(ndf=8)
        with torch.no_grad():
            for _ in range(200):  # training mode: one power iteration per layer and pass
                d(torch.rand(2, 3, 64, 64))
    table = lesson.power_iteration_table(d.eval(), solutions.power_iteration)
    assert list(table["layer"]) == ["middle.0", "middle.1", "middle.2"]
    np.testing.assert_allclose(table["yours, 50 rounds"], table["stored sigma (SVD)"], rtol=1e-3)
    np.testing.assert_allclose(table["applied sigma"], 1.0, atol=0.02)
    with pytest.warns(UserWarning, match="not written yet"):
        plain = lesson.power_iteration_table(d, _stub)
    assert "yours, 1 round" not in plain.columns
    with pytest.raises(ValueError, match="no spectrally normalised layer"):
        lesson.power_iteration_table(Discriminator(ndf=8, spectral_norm=False))


def test_fd_and_kid_by_hand_match_the_library_and_stubs_give_nan():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 0.5
    table = lesson.by_hand_vs_library(solutions.frechet_distance, solutions.kid, real, {"f": fake})
    row = table.iloc[0]
    assert row["n"] == 40
    assert row["FD, yours"] == pytest.approx(row["FD, library"], rel=1e-6)
    assert row["KID, yours"] == pytest.approx(row["KID, library"], rel=1e-6, abs=1e-9)
    with pytest.warns(UserWarning, match="not written yet"):
        stubs = lesson.by_hand_vs_library(_stub, _stub, real, {"f": fake})
    assert np.isnan(stubs.iloc[0]["FD, yours"]) and np.isnan(stubs.iloc[0]["KID, yours"])


def test_the_quiz_pool_and_the_note_on_missing_runs(ssd_generator, tiny_dataset, tmp_path):
    class StandIn:  # answers like a published run
        config = type("C", (), {"real_range": "[0, 1]"})()

        def load_generator(self):
            return ssd_generator

    pool = lesson.quiz_pool(tiny_dataset, {"ssd": StandIn()}, n_per_source=3, seed=1)
    assert sorted(i.source for i in pool) == ["real"] * 3 + ["ssd"] * 3
    assert all(i.image.shape == (64, 64, 3) and i.image.dtype == np.uint8 for i in pool)
    root = tmp_path / "published"
    root.mkdir()
    assert lesson.published_runs(["ssd", "no_sn"], root=root) == {}
    note = lesson.missing_note(["no_sn"], {})
    assert note.startswith("not published yet: no_sn-seed42") and "\n" not in note
    assert lesson.missing_note(["ssd"], {"ssd": object()}) == ""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lesson.missing_note([], {})


def _cells(nb) -> list[tuple[str, str]]:
    """(kind, source) of every cell but the parameters cell, whose values an execution may
    have changed."""
    return [
        (c.cell_type, c.source) for c in nb.cells if "parameters" not in c.metadata.get("tags", [])
    ]


def test_the_committed_notebooks_match_the_source(notebooks):
    """lessons/student and lessons/teacher are committed; after an edit of the source they
    must be rebuilt (`make lesson`), or the class would run yesterday's lesson."""
    for role, fresh in notebooks.items():
        path = LESSON.parent / role / "gan_class.ipynb"
        assert path.is_file(), f"{path} is missing: run `make lesson`"
        committed = nbformat.read(path, as_version=4)
        assert _cells(committed) == _cells(fresh), f"{path} is stale: run `make lesson`"
    student = nbformat.read(LESSON.parent / "student" / "gan_class.ipynb", as_version=4)
    assert not any(c.get("outputs") for c in student.cells if c.cell_type == "code")


def test_the_committed_teacher_notebook_ran_to_the_end():
    teacher = nbformat.read(LESSON.parent / "teacher" / "gan_class.ipynb", as_version=4)
    code = [c for c in teacher.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "run `make lesson` to execute it"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("ename") if errors else ""
