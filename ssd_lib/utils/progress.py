"""Progress bars that show wherever the work runs: a terminal, a log file, Jupyter, papermill.

``tqdm.auto`` picks a Jupyter widget inside any kernel. Under papermill (``make figures``)
nobody sees the widget: the terminal shows its text form once, at "0%", and the executed
notebook keeps a widget that no longer exists. ``run_notebooks`` therefore sets
``SSD_PROGRESS=text`` for the kernels it starts, and every long loop in the library asks
``progress_bar`` for its bar: plain text bars then, written to stderr, which papermill
streams to the terminal as they come and the notebook keeps in its final state.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm

ENV = "SSD_PROGRESS"


def progress_bar(*args: Any, **kwargs: Any) -> Any:
    """A ``tqdm`` bar: text when ``$SSD_PROGRESS`` is "text", else ``tqdm.auto``'s choice."""
    if os.environ.get(ENV) == "text":
        kwargs.setdefault("mininterval", float(os.environ.get("TQDM_MININTERVAL", 10)))
        kwargs.setdefault("ascii", True)
        return text_tqdm(*args, **kwargs)
    return auto_tqdm(*args, **kwargs)
