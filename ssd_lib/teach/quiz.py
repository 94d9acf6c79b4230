"""An in-class real-or-fake study, after LAPGAN's (Denton et al. 2015).

LAPGAN's volunteers saw real and generated images for 50 to 2000 ms and answered "real or
fake?". Here each student's laptop runs a :class:`Quiz`: a pool of items (uint8 images, each
with its source, "real" or a model's name) in a seeded random order, each shown for a fixed
exposure and then hidden. Every answer is saved at once, one row per answer, in one CSV per
student (an anonymous id, no names) in a shared folder; :func:`summarize` reads all of them
and :func:`plot_summary` draws the fraction judged real per source and exposure beside
LAPGAN's published numbers.

As in :mod:`ssd_lib.generation.explorer`, the logic is testable without a browser: ``show_next()``,
``hide()`` and ``answer("real")`` drive the quiz, the clock is injectable (response times are
``clock()`` differences from the image's onset), and :meth:`Quiz.widget` is a thin
ipywidgets layer whose buttons call those methods, with an injectable scheduler for the timer
that hides the image.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ssd_lib.utils.atomic import atomic_write_text
from ssd_lib.utils.errors import SSDError

log = logging.getLogger(__name__)

REAL = "real"
JUDGEMENTS = ("real", "fake")
FILE_PATTERN = "quiz_*.csv"
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

# LAPGAN's human study (Denton et al. 2015, arXiv:1506.05751, the figure of its human
# evaluation: 15 volunteers, about 10,000 judgements, exposures of 50-2000 ms). Approximately,
# read from the paper's figure at the longest exposure, 2000 ms: about 90 % of real images and
# about 50 % of LAPGAN's (class-conditional) samples were judged real, a plain GAN's under
# 10 % (0.10 below is that upper bound). The abstract words the headline as "around 40 %"
# for its CIFAR-10 samples against 10 % for a GAN. Shorter exposures are not transcribed.
LAPGAN_2015: tuple[tuple[str, int, float], ...] = (
    ("real images", 2000, 0.90),
    ("LAPGAN samples", 2000, 0.50),
    ("GAN samples (under)", 2000, 0.10),
)
LAPGAN_SOURCE = (
    "Denton et al. 2015 (LAPGAN), human study; approximately, read from the paper's figure"
)


class QuizError(SSDError, ValueError):
    """A quiz used out of order or with a bad value; the message says what is allowed."""


class QuizDataError(SSDError, ValueError):
    """A results CSV that cannot be read; the message names the file."""


@dataclass(frozen=True)
class QuizItem:
    """One image to judge: uint8 (H, W, 3), its source ("real" or a model name), an id."""

    image: np.ndarray
    source: str
    item_id: str

    @property
    def truth(self) -> str:
        return REAL if self.source == REAL else "fake"


@dataclass(frozen=True)
class Answer:
    """One row of a student's CSV. Times in milliseconds; response time from image onset."""

    student_id: str
    seed: int
    question: int
    item_id: str
    source: str
    truth: str
    answer: str
    correct: bool
    exposure_ms: int
    response_ms: float


COLUMNS = tuple(f.name for f in fields(Answer))


def _hwc_uint8(image: Any, where: str) -> np.ndarray:
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (1, 3):
        raise QuizError(
            f"{where} must be a uint8 image (H, W, 3) or (3, H, W); got {a.dtype} {a.shape}"
        )
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def make_pool(
    real: Any, fakes: dict[str, Any], n_per_source: int | None = None, seed: int = 0
) -> list[QuizItem]:
    """Quiz items from uint8 batches (N, 3, H, W) or (N, H, W, 3): ``real`` images and one
    batch per model name. ``n_per_source`` (default: the smallest batch) images are drawn
    from each without replacement (seeded), so every source is asked about equally often."""
    batches = {REAL: real, **fakes}
    if REAL in fakes:
        raise QuizError("a model cannot be named 'real'; that name marks the real images")
    smallest = min(len(b) for b in batches.values())
    n = smallest if n_per_source is None else n_per_source
    if not isinstance(n, int) or not 1 <= n <= smallest:
        raise QuizError(f"n_per_source={n!r} must be an int in [1, {smallest}]")
    rng = np.random.default_rng(seed)
    items = []
    for source, batch in batches.items():
        for i in sorted(rng.choice(len(batch), n, replace=False).tolist()):
            image = _hwc_uint8(batch[i], f"{source}[{i}]")
            items.append(QuizItem(image, source, f"{source}-{i}"))
    return items


def _student_seed(student_id: str) -> int:
    return zlib.crc32(student_id.encode())


class Quiz:
    """One student's session. ``exposure_ms``: one exposure for every image, or a sequence:
    each exposure is then used equally often for each source (up to one), assigned at random
    with the quiz's seed.

    ``student_id`` (default: a random 8-character id) names the CSV ``quiz_<id>.csv`` in
    ``out_dir``; ``seed`` (default: derived from the id) fixes the order of the items.
    ``clock()`` returns seconds (default ``time.monotonic``).
    """

    def __init__(
        self,
        items: Sequence[QuizItem],
        out_dir: str | Path,
        exposure_ms: int | Sequence[int] = 1000,
        student_id: str | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        n_questions: int | None = None,
    ) -> None:
        if not items:
            raise QuizError("the quiz needs at least one item")
        for item in items:
            _hwc_uint8(item.image, f"item {item.item_id!r}")
        self.student_id = uuid.uuid4().hex[:8] if student_id is None else student_id
        if not isinstance(self.student_id, str) or not SAFE_ID.match(self.student_id):
            raise QuizError(
                f"student_id={student_id!r} must be 1-40 characters of [A-Za-z0-9_-] (it names "
                f"the CSV file; use an anonymous code, not a name)"
            )
        self.seed = _student_seed(self.student_id) if seed is None else seed
        if not isinstance(self.seed, int) or self.seed < 0:
            raise QuizError(f"seed={seed!r} must be an int >= 0 or None")
        n = len(items) if n_questions is None else n_questions
        if not isinstance(n, int) or not 1 <= n <= len(items):
            raise QuizError(f"n_questions={n_questions!r} must be an int in [1, {len(items)}]")
        exposures = [exposure_ms] if isinstance(exposure_ms, int | np.integer) else exposure_ms
        exposures = list(exposures)
        if not exposures or any(
            isinstance(e, bool) or not isinstance(e, int | np.integer) or not 10 <= e <= 60_000
            for e in exposures
        ):
            raise QuizError(
                f"exposure_ms={exposure_ms!r} must be an int or a list of ints in [10, 60000]"
            )
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(items))[:n]
        self.items = [items[i] for i in order]
        # Within each source every exposure comes equally often (up to one), so that no
        # source is seen mostly at short exposures by chance.
        self.exposures = [0] * n
        for source in sorted({item.source for item in self.items}):
            where = [i for i, item in enumerate(self.items) if item.source == source]
            reps = -(-len(where) // len(exposures))
            drawn = rng.permutation(np.tile(exposures, reps))[: len(where)]
            for i, e in zip(where, drawn, strict=True):
                self.exposures[i] = int(e)
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / f"quiz_{self.student_id}.csv"
        self.clock = clock
        self.answers: list[Answer] = []
        self.index = -1  # the question on screen or last shown
        self.current: QuizItem | None = None
        self.visible = False
        self._shown_at = 0.0
        self.controls: dict[str, Any] = {}

    # ----- the quiz as a state machine -----------------------------------------------------
    @property
    def done(self) -> bool:
        return len(self.answers) == len(self.items)

    @property
    def exposure_ms(self) -> int:
        """The exposure of the question on screen (or of the next one)."""
        return self.exposures[min(max(self.index, 0), len(self.items) - 1)]

    def progress(self) -> str:
        return f"{len(self.answers)} of {len(self.items)} answered"

    def show_next(self) -> QuizItem | None:
        """Put the next image on screen and start its timer; None when every one is answered."""
        if self.current is not None:
            raise QuizError(f"answer image {self.index + 1} first (answer('real' or 'fake'))")
        if self.done:
            return None
        self.index += 1
        self.current = self.items[self.index]
        self.visible = True
        self._shown_at = self.clock()
        return self.current

    def hide(self, question: int | None = None) -> None:
        """Take the image off screen (the widget's timer calls this after the exposure).

        With ``question`` given, only that question's image is hidden: a late timer from an
        earlier image never hides the next one early."""
        if question is None or question == self.index:
            self.visible = False

    def answer(self, judgement: str) -> Answer:
        """Record "real" or "fake" for the image shown last, and save the CSV."""
        if judgement not in JUDGEMENTS:
            raise QuizError(f"answer must be one of {list(JUDGEMENTS)}, got {judgement!r}")
        if self.current is None:
            raise QuizError("no image is waiting for an answer: call show_next() first")
        item = self.current
        row = Answer(
            student_id=self.student_id,
            seed=self.seed,
            question=self.index + 1,
            item_id=item.item_id,
            source=item.source,
            truth=item.truth,
            answer=judgement,
            correct=judgement == item.truth,
            exposure_ms=self.exposures[self.index],
            response_ms=round(1000.0 * (self.clock() - self._shown_at), 1),
        )
        self.answers.append(row)
        self.current, self.visible = None, False
        self.save()
        return row

    def save(self) -> Path:
        """Write every answer so far to ``quiz_<student_id>.csv`` (atomically: a copy taken
        at any moment is complete)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(astuple(a) for a in self.answers)
        return atomic_write_text(self.path, buf.getvalue())

    # ----- widget --------------------------------------------------------------------------
    def widget(
        self, size: int = 256, schedule: Callable[[float, Callable[[], None]], Any] | None = None
    ) -> Any:
        """The ipywidgets UI: an image, "next image", "real" and "fake" buttons, a status line.

        ``schedule(seconds, callback)`` runs ``callback`` later (default: a daemon
        ``threading.Timer``); it hides the image after its exposure."""
        import ipywidgets as W  # imported here: the quiz logic works without a front end

        from ssd_lib.generation.explorer import png_bytes

        if schedule is None:
            schedule = _timer
        blank = png_bytes(_blank(self.items[0].image.shape), size)
        c: dict[str, Any] = {
            "image": W.Image(value=blank, format="png", width=size, height=size),
            "next": W.Button(description="next image", button_style="primary"),
            "real": W.Button(description="real", disabled=True),
            "fake": W.Button(description="fake", disabled=True),
            "status": W.Label(value=f"{self.progress()}. Press 'next image' when ready."),
        }

        def refresh(message: str = "") -> None:
            waiting = self.current is not None
            c["real"].disabled = c["fake"].disabled = not waiting
            c["next"].disabled = waiting or self.done
            shown = self.current.image if self.current is not None and self.visible else None
            c["image"].value = png_bytes(_chw(shown), size) if shown is not None else blank
            c["status"].value = message or (
                f"{self.progress()}: real or fake?" if waiting else f"{self.progress()}."
            )

        def on_next(_: Any) -> None:
            try:
                if self.show_next() is None:
                    refresh(f"Done, thank you: {self.progress()}, saved to {self.path.name}.")
                    return
            except QuizError as err:
                refresh(str(err))
                return
            question = self.index
            refresh()

            def hide_later() -> None:
                self.hide(question)
                refresh()

            schedule(self.exposures[question] / 1000.0, hide_later)

        def on_answer(judgement: str) -> Callable[[Any], None]:
            def handler(_: Any) -> None:
                try:
                    self.answer(judgement)
                except (QuizError, OSError) as err:
                    refresh(f"not recorded: {err}")
                    return
                end = " Done, thank you." if self.done else " Press 'next image' when ready."
                refresh(f"{self.progress()}.{end}")

            return handler

        c["next"].on_click(on_next)
        c["real"].on_click(on_answer("real"))
        c["fake"].on_click(on_answer("fake"))
        self.controls = c
        return W.VBox([c["image"], W.HBox([c["next"], c["real"], c["fake"]]), c["status"]])


def _timer(seconds: float, callback: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer


def _blank(shape: tuple[int, ...]) -> Any:
    """A mid-grey (3, H, W) uint8 tensor: what the screen shows between images."""
    import torch

    return torch.full((3, shape[0], shape[1]), 128, dtype=torch.uint8)


def _chw(image: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


# ----- results ------------------------------------------------------------------------------


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (Wilson 1927), within [0, 1].

    Unlike the normal approximation p +- z sqrt(p(1-p)/n), it stays inside [0, 1] and does
    not shrink to zero width at 0 of n or n of n."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: rounding would miss them
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def _read_one(path: Path) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"student_id": str, "item_id": str})
    except (ValueError, pd.errors.ParserError) as err:  # EmptyDataError is a ValueError
        raise QuizDataError(f"{path} is not a readable CSV: {err}") from err
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise QuizDataError(f"{path} lacks the columns {missing}")
    bad = sorted(str(a) for a in set(frame["answer"]) - set(JUDGEMENTS))
    if bad:
        raise QuizDataError(f"{path} has answers {bad}; allowed: {list(JUDGEMENTS)}")
    return frame[list(COLUMNS)]


def read_answers(folder: str | Path, skip_bad: bool = False) -> Any:
    """Every row of every ``quiz_*.csv`` in ``folder``, as one pandas DataFrame.

    A file with missing columns or unknown answers raises :class:`QuizDataError` naming it;
    with ``skip_bad=True`` it is logged and left out instead."""
    import pandas as pd

    folder = Path(folder)
    paths = sorted(folder.glob(FILE_PATTERN))
    if not paths:
        raise QuizDataError(f"no {FILE_PATTERN} files in {folder}")
    frames = []
    for path in paths:
        try:
            frames.append(_read_one(path))
        except QuizDataError as err:
            if not skip_bad:
                raise
            log.warning("skipping %s", err)
    if not frames:
        raise QuizDataError(f"no readable {FILE_PATTERN} files in {folder}")
    return pd.concat(frames, ignore_index=True)


def summarize(answers: Any, confidence: float = 0.95) -> Any:
    """Fraction judged real per source and exposure, with a Wilson interval.

    ``answers``: a folder of CSVs or the DataFrame of :func:`read_answers`. Returns a
    DataFrame with columns source, exposure_ms, n, n_judged_real, frac_real, ci_low, ci_high,
    n_students; real images first. The interval treats every answer as independent; answers
    of one student are not, so with few students it is too narrow."""
    import pandas as pd

    frame = answers if isinstance(answers, pd.DataFrame) else read_answers(answers)
    rows = []
    for (source, exposure), group in frame.groupby(["source", "exposure_ms"], sort=True):
        n = len(group)
        k = int((group["answer"] == REAL).sum())
        low, high = wilson_interval(k, n, confidence)
        rows.append(
            {
                "source": source,
                "exposure_ms": int(exposure),
                "n": n,
                "n_judged_real": k,
                "frac_real": k / n,
                "ci_low": low,
                "ci_high": high,
                "n_students": group["student_id"].nunique(),
            }
        )
    out = pd.DataFrame(rows)
    out["_order"] = out["source"] != REAL
    out = out.sort_values(["_order", "source", "exposure_ms"]).drop(columns="_order")
    out.attrs["confidence"] = confidence
    return out.reset_index(drop=True)


def plot_summary(summary: Any, published: Sequence[tuple[str, int, float]] = LAPGAN_2015) -> Any:
    """Fraction judged real against exposure, one line per source with its interval, and
    the published LAPGAN numbers as open markers. Returns a figure (shown inline in Jupyter)."""
    from ssd_lib.reporting.plots import PlotFigure

    fig = PlotFigure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    for source, group in summary.groupby("source", sort=False):
        g = group.sort_values("exposure_ms")
        err = [g["frac_real"] - g["ci_low"], g["ci_high"] - g["frac_real"]]
        label = "real images, this class" if source == REAL else f"{source}, this class"
        ax.errorbar(g["exposure_ms"], g["frac_real"], yerr=err, marker="o", capsize=3, label=label)
    for name, exposure, frac in published:
        ax.plot(
            [exposure],
            [frac],
            linestyle="none",
            marker="D",
            markerfacecolor="none",
            markersize=8,
            label=f"{name}, LAPGAN paper",
        )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("exposure (ms)")
    ax.set_ylabel("fraction judged real")
    confidence = summary.attrs.get("confidence", 0.95)
    ax.set_title(f"Judged real, with {confidence:.0%} Wilson intervals", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.text(0.01, 0.01, f"open markers: {LAPGAN_SOURCE}", fontsize=6, alpha=0.7)
    fig.tight_layout()
    return fig
