"""The real-or-fake quiz: order, timing, one CSV per student, and the class summary."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ssd_lib.teach.quiz import (
    COLUMNS,
    LAPGAN_2015,
    Quiz,
    QuizDataError,
    QuizError,
    make_pool,
    plot_summary,
    read_answers,
    summarize,
    wilson_interval,
)

SOURCES = ("real", "ssd", "dcgan")


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def pool():
    """12 tiny images per source; each source has its own grey level."""
    batches = {
        s: np.full((12, 3, 8, 8), 40 * (i + 1), dtype=np.uint8) for i, s in enumerate(SOURCES)
    }
    return make_pool(batches["real"], {k: v for k, v in batches.items() if k != "real"})


def run_student(pool, folder, student_id, policy, exposure_ms=(250, 2000)):
    clock = FakeClock()
    quiz = Quiz(pool, folder, exposure_ms=exposure_ms, student_id=student_id, clock=clock)
    while (item := quiz.show_next()) is not None:
        clock.t += 0.5
        quiz.hide()
        quiz.answer(policy(item))
    return quiz


def test_wilson_interval_matches_hand_computed_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_make_pool_takes_equal_numbers_per_source_and_accepts_both_layouts():
    real = np.zeros((5, 3, 4, 4), dtype=np.uint8)
    fake = np.zeros((7, 4, 4, 3), dtype=np.uint8)  # channels last
    items = make_pool(real, {"ssd": fake}, seed=1)
    assert [i.source for i in items].count("real") == 5 == [i.source for i in items].count("ssd")
    assert all(i.image.shape == (4, 4, 3) for i in items)
    assert {i.truth for i in items} == {"real", "fake"}
    with pytest.raises(QuizError, match="uint8"):
        make_pool(real.astype(np.float32), {"ssd": fake})


def test_order_is_seeded_and_every_item_is_asked_once(pool, tmp_path):
    ids = [[q.item_id for q in Quiz(pool, tmp_path, seed=s).items] for s in (3, 3, 4)]
    assert ids[0] == ids[1] != ids[2]
    assert sorted(ids[0]) == sorted(i.item_id for i in pool)
    a, b = Quiz(pool, tmp_path, student_id="anna"), Quiz(pool, tmp_path, student_id="ben")
    assert [q.item_id for q in a.items] != [q.item_id for q in b.items]  # seed from the id


def test_exposures_are_balanced_over_the_questions(pool, tmp_path):
    quiz = Quiz(pool, tmp_path, exposure_ms=[50, 500, 2000], seed=0)
    assert sorted(set(quiz.exposures)) == [50, 500, 2000]
    assert [quiz.exposures.count(e) for e in (50, 500, 2000)] == [12, 12, 12]


def test_answer_records_truth_source_exposure_and_response_time(pool, tmp_path):
    clock = FakeClock()
    quiz = Quiz(pool, tmp_path, exposure_ms=400, student_id="s01", clock=clock)
    item = quiz.show_next()
    assert quiz.visible and item is quiz.current
    clock.t += 0.4
    quiz.hide()
    assert not quiz.visible
    clock.t += 0.35  # the answer comes 750 ms after the image appeared
    row = quiz.answer("real")
    assert (row.question, row.source, row.truth, row.exposure_ms) == (
        1,
        item.source,
        item.truth,
        400,
    )
    assert row.response_ms == pytest.approx(750.0)
    assert row.correct == (item.source == "real")


def test_each_answer_is_saved_at_once_one_row_per_answer(pool, tmp_path):
    quiz = Quiz(pool, tmp_path, student_id="s02", clock=FakeClock())
    for n in (1, 2, 3):
        quiz.show_next()
        quiz.answer("fake")
        with open(tmp_path / "quiz_s02.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == COLUMNS and len(rows) == 1 + n
    assert [p.name for p in tmp_path.iterdir()] == ["quiz_s02.csv"]  # no temporary files left


def test_the_quiz_refuses_out_of_order_use_with_a_clear_message(pool, tmp_path):
    quiz = Quiz(pool, tmp_path, student_id="s03")
    with pytest.raises(QuizError, match="show_next"):
        quiz.answer("real")
    quiz.show_next()
    with pytest.raises(QuizError, match="answer image 1 first"):
        quiz.show_next()
    with pytest.raises(QuizError, match=r"\['real', 'fake'\]"):
        quiz.answer("maybe")
    with pytest.raises(QuizError, match="anonymous code"):
        Quiz(pool, tmp_path, student_id="../Anna Smith")


def test_a_late_timer_does_not_hide_the_next_image(pool, tmp_path):
    quiz = Quiz(pool, tmp_path, clock=FakeClock())
    quiz.show_next()
    quiz.answer("real")  # answered before the first image's timer fired
    quiz.show_next()
    quiz.hide(question=0)
    assert quiz.visible
    quiz.hide(question=1)
    assert not quiz.visible


def test_summary_of_fooled_perfect_and_coin_flipping_students(pool, tmp_path, monkeypatch):
    # 500 answers, each saved durably, would spend seconds in fsync; durability is not what
    # this test checks.
    monkeypatch.setattr("ssd_lib.utils.atomic.os.fsync", lambda fd: None)
    fooled, perfect, coin = tmp_path / "fooled", tmp_path / "perfect", tmp_path / "coin"
    for k in range(3):
        run_student(pool, fooled, f"f{k}", lambda item: "real")
        run_student(pool, perfect, f"p{k}", lambda item: item.truth)
    rng = np.random.default_rng(0)
    for k in range(8):
        run_student(pool, coin, f"c{k}", lambda item: ("real", "fake")[rng.integers(2)])

    s = summarize(fooled)
    assert list(s["source"].unique()) == ["real", "dcgan", "ssd"]  # real images first
    assert set(s["exposure_ms"]) == {250, 2000} and s["n"].sum() == 3 * 36
    assert (s["frac_real"] == 1.0).all() and (s["ci_high"] == 1.0).all()
    assert (s["n_students"] == 3).all()

    s = summarize(perfect)
    real = s["source"] == "real"
    assert (s.loc[real, "frac_real"] == 1.0).all() and real.sum() == 2
    assert (s.loc[~real, "frac_real"] == 0.0).all() and (s.loc[~real, "ci_low"] == 0.0).all()

    s = summarize(coin)
    assert (s["n"] == 8 * 6).all()
    assert ((s["ci_low"] < 0.5) & (0.5 < s["ci_high"])).all(), s
    assert (s["frac_real"] - 0.5).abs().max() < 0.2


def test_reading_refuses_a_broken_file_by_name_or_skips_it(pool, tmp_path):
    run_student(pool, tmp_path, "ok1", lambda item: "real")
    (tmp_path / "quiz_broken.csv").write_text("student_id,answer\nx,perhaps\n")
    with pytest.raises(QuizDataError, match="quiz_broken.csv"):
        read_answers(tmp_path)
    assert len(read_answers(tmp_path, skip_bad=True)) == 36
    with pytest.raises(QuizDataError, match="no quiz_"):
        read_answers(tmp_path / "empty")


def test_plot_shows_every_source_beside_the_published_numbers(pool, tmp_path):
    run_student(pool, tmp_path, "p1", lambda item: item.truth)
    fig = plot_summary(summarize(tmp_path))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == len(SOURCES) + len(LAPGAN_2015)
    assert any(label.startswith("ssd") for label in labels)
    assert sum("LAPGAN paper" in label for label in labels) == len(LAPGAN_2015)
    assert fig.axes[0].get_xscale() == "log"


def test_widget_shows_hides_after_the_exposure_and_records_clicks(pool, tmp_path):
    pytest.importorskip("ipywidgets")
    scheduled = []
    quiz = Quiz(pool, tmp_path, exposure_ms=300, student_id="w1", clock=FakeClock())
    quiz.widget(size=32, schedule=lambda seconds, cb: scheduled.append((seconds, cb)))
    c = quiz.controls
    blank = c["image"].value
    assert c["real"].disabled and not c["next"].disabled
    c["next"].click()
    assert c["image"].value != blank and not c["real"].disabled and c["next"].disabled
    assert scheduled[0][0] == pytest.approx(0.3)
    scheduled[0][1]()  # the timer fires: the image is gone, the buttons still wait
    assert c["image"].value == blank and not c["fake"].disabled
    c["fake"].click()
    assert len(quiz.answers) == 1 and quiz.answers[0].answer == "fake"
    assert (tmp_path / "quiz_w1.csv").exists() and c["real"].disabled
