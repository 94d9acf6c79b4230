"""One lesson source -> a student notebook (stubs) and a teacher notebook (solutions)."""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from ssd_lib.teach.build import BuildError, build, main, parse_percent, stub_solution

LESSON = textwrap.dedent(
    '''\
    # Lesson header: comments before the first cell are ignored.

    # %% [markdown]
    # # The generator's loss
    # Write the *non-saturating* loss.

    # %% tags=["parameters"]
    seed = 0

    # %%
    import torch

    import ssd_lib.teach as teach

    # %% tags=["solution"] hint="the batch mean of -log D(G(z))"
    import math  # imports stay


    def my_g_loss(d_fake):
        """Non-saturating loss from D's probabilities (N,)."""
        # a comment that would give the answer away
        return -torch.log(d_fake).mean()

    # %% [markdown] tags=["teacher"]
    # Ask the class why not log(1 - D(G(z))).

    # %% [markdown] tags=["student"]
    # Run the check below once your function is written.

    # %%
    teach.check_g_loss(my_g_loss)
    '''
)


@pytest.fixture
def built(tmp_path):
    source = tmp_path / "gan_loss.py"
    source.write_text(LESSON)
    paths = build(source, tmp_path / "out")
    return {role: nbformat.read(path, as_version=4) for role, path in paths.items()}, paths


def test_student_gets_stubs_and_teacher_gets_solutions(built):
    nbs, paths = built
    assert paths["student"].parent.name == "student" and paths["teacher"].name == "gan_loss.ipynb"
    student, teacher = nbs["student"], nbs["teacher"]
    stub = next(c for c in student.cells if "exercise" in c.metadata.get("tags", []))
    assert stub.source == textwrap.dedent(
        '''\
        import math  # imports stay


        def my_g_loss(d_fake):
            """Non-saturating loss from D's probabilities (N,)."""
            raise NotImplementedError('write this: the batch mean of -log D(G(z))')'''
    )
    solution = next(c for c in teacher.cells if "solution" in c.metadata.get("tags", []))
    assert "return -torch.log(d_fake).mean()" in solution.source
    texts = {role: [c.source for c in nb.cells] for role, nb in nbs.items()}
    assert not any("Ask the class" in t for t in texts["student"])
    assert any("Ask the class" in t for t in texts["teacher"])
    assert any("Run the check below" in t for t in texts["student"])
    assert not any("Run the check below" in t for t in texts["teacher"])
    assert student.cells[0].source == "# The generator's loss\nWrite the *non-saturating* loss."
    assert student.cells[1].metadata["tags"] == ["parameters"]


def test_rebuilding_an_unchanged_source_writes_identical_files(built, tmp_path):
    _, paths = built
    first = {role: p.read_bytes() for role, p in paths.items()}
    build(tmp_path / "gan_loss.py", tmp_path / "out")
    assert {role: p.read_bytes() for role, p in paths.items()} == first


def test_the_teacher_notebook_is_itself_a_source_for_the_same_student_notebook(built, tmp_path):
    nbs, paths = built
    again = build(paths["teacher"], tmp_path / "from_ipynb")
    got = [(c.source, c.metadata) for c in nbformat.read(again["student"], as_version=4).cells]
    expected = [
        (c.source, c.metadata)
        for c in nbs["student"].cells
        if "student" not in c.metadata.get("tags", [])  # the teacher's never had those
    ]
    assert got == expected
    assert any("write this: the batch mean of -log D(G(z))" in source for source, _ in got)


@pytest.mark.slow  # executes the notebook twice
def test_student_check_fails_in_one_line_then_passes_with_the_solution_pasted(built):
    """Executed in a real kernel, as in class: run all, paste the solution, rerun two cells."""
    from nbclient import NotebookClient

    nbs, paths = built
    student = nbs["student"]
    exercise = next(
        i for i, c in enumerate(student.cells) if "exercise" in c.metadata.get("tags", [])
    )
    check = len(student.cells) - 1
    client = NotebookClient(
        student,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(paths["student"].parent)}},
    )
    with client.setup_kernel():
        for i, cell in enumerate(student.cells):
            client.execute_cell(cell, i)  # raises if any cell errors: none may
        before = student.cells[check].outputs
        solution = next(c for c in nbs["teacher"].cells if "solution" in c.metadata.get("tags", []))
        student.cells[exercise].source = solution.source
        client.execute_cell(student.cells[exercise], exercise)
        client.execute_cell(student.cells[check], check)
        after = student.cells[check].outputs
    assert [o.output_type for o in before] == ["execute_result"]
    line = before[0].data["text/plain"]
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("\u2717 generator loss: not written yet: my_g_loss")
    assert "write this: the batch mean of -log D(G(z))" in line
    assert after[0].data["text/plain"].startswith("\u2713 generator loss: ")


def test_solution_cells_may_only_define_functions():
    with pytest.raises(BuildError, match=r"lesson.py:9: .*only imports and function definitions"):
        stub_solution("def f(x):\n    return x\nprint(f(1))\n", where="lesson.py", first_line=7)
    with pytest.raises(BuildError, match="own lines"):
        stub_solution("def f(x): return x\n")
    with pytest.raises(BuildError, match="does not parse"):
        stub_solution("def f(x:\n    pass\n")


def test_stub_keeps_multiline_signatures_and_decorators():
    source = "@staticmethod\ndef f(\n    a,\n    b,\n):\n    c = a + b\n    return c\n"
    signature = "@staticmethod\ndef f(\n    a,\n    b,\n):\n"
    assert stub_solution(source, hint="add") == (
        signature + "    raise NotImplementedError('write this: add')"
    )
    # without a hint: the docstring's first line, else the function's name
    documented = 'def g(x):\n    """Double x.\n\n    More."""\n    return 2 * x\n'
    assert stub_solution(documented).endswith(
        '    More."""\n    raise NotImplementedError(\'write this: Double x.\')'
    )
    assert "write this: the body of f()" in stub_solution("def f():\n    pass\n")


def test_bad_sources_are_refused_with_the_line_number(tmp_path):
    with pytest.raises(BuildError, match=r"lesson.py:1: code before the first"):
        parse_percent("x = 1\n# %%\ny = 2\n", "lesson.py")
    with pytest.raises(BuildError, match=r"lesson.py:1: metadata tags=\[solution\] is not JSON"):
        parse_percent("# %% tags=[solution]\n", "lesson.py")
    with pytest.raises(BuildError, match=r"lesson.py:6: .*Assign"):  # the line in the file
        build_from = tmp_path / "lesson.py"
        build_from.write_text('# %%\nimport math\n\n# %% tags=["solution"]\n\nx = 1\n')
        build(build_from, tmp_path / "never")
    plain = tmp_path / "plain.py"
    plain.write_text("# %%\nx = 1\n")
    assert main([str(plain), str(tmp_path / "o")]) == 2  # no solution cell: a one-line error
    assert not (tmp_path / "o").exists()


def test_cli_prints_both_paths(tmp_path, capsys):
    source = tmp_path / "l.py"
    source.write_text(LESSON)
    assert main([str(source), str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"student: {tmp_path / 'o/student/l.ipynb'}",
        f"teacher: {tmp_path / 'o/teacher/l.ipynb'}",
    ]
    assert json.loads((tmp_path / "o/student/l.ipynb").read_text())["nbformat"] == 4


def test_part_durations_sum_papermills_cell_times_per_heading(tmp_path):
    from ssd_lib.teach.build import part_durations

    def code(seconds):
        cell = nbformat.v4.new_code_cell("x = 1")
        cell.metadata["papermill"] = {"duration": seconds}
        return cell

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        code(1.5),
        nbformat.v4.new_markdown_cell("## Part 1. One\ntext"),
        code(2.0),
        nbformat.v4.new_markdown_cell("### a sub-heading stays in part 1"),
        code(3.0),
        nbformat.v4.new_markdown_cell("intro\n## Part 2. Two"),
        nbformat.v4.new_code_cell("unexecuted = True"),
    ]
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    assert part_durations(path) == {"setup": 1.5, "Part 1. One": 5.0, "Part 2. Two": 0.0}
