"""The committed notebook 05 shows its explorer without a kernel (nbviewer, GitHub).

nbviewer draws ipywidgets from the widget state saved in the notebook's metadata
(``metadata.widgets["application/vnd.jupyter.widget-state+json"]``), so the explorer's image is
only visible there when that state holds the Image model with its PNG. This reads the
committed file only; it neither executes nor changes it.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

NB05 = Path(__file__).resolve().parents[1] / "notebooks" / "05_latent_explorer.ipynb"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def _state() -> dict:
    nb = json.loads(NB05.read_text())
    widgets = nb["metadata"].get("widgets", {})
    assert STATE_MIME in widgets, f"{NB05.name} stores no widget state (save it with widget state)"
    return nb, widgets[STATE_MIME]


def _image_value(model: dict) -> bytes:
    """The PNG bytes of an ImageModel: in ipywidgets 8 a binary buffer at path ["value"]."""
    for buffer in model.get("buffers", []):
        if buffer["path"] == ["value"]:
            data = buffer["data"]
            return base64.b64decode(data) if buffer.get("encoding") == "base64" else data.encode()
    value = model["state"].get("value", b"")
    return value if isinstance(value, bytes) else str(value).encode()


def test_notebook_05_stores_the_explorer_image_in_its_widget_state():
    nb, state = _state()
    assert state.get("version_major") == 2, "widget state of another ipywidgets protocol"
    models = state["state"]
    images = {k: m for k, m in models.items() if m["model_name"] == "ImageModel"}
    assert len(images) == 1, f"expected the explorer's one Image model, found {len(images)}"
    ((image_id, model),) = images.items()
    png = _image_value(model)
    assert png, "the explorer's Image model has an empty value"
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (256, 256, 3) and pixels.std() > 5, "not the explorer's 256x256 image"

    # The image belongs to the widget the notebook displays: the displayed view's model is a
    # box whose children (recursively) include it, next to the direction sliders.
    shown = [
        out["data"][VIEW_MIME]["model_id"]
        for cell in nb["cells"]
        for out in cell.get("outputs", [])
        if VIEW_MIME in out.get("data", {})
    ]
    assert shown, "notebook 05 displays no widget"

    def descendants(model_id: str) -> set[str]:
        children = models[model_id]["state"].get("children", [])
        found = {model_id}
        for child in children:
            found |= descendants(child.removeprefix("IPY_MODEL_"))
        return found

    tree = set().union(*(descendants(m) for m in shown if m in models))
    assert image_id in tree, "the stored image is not part of the displayed explorer"
    sliders = [m for m in tree if models[m]["model_name"] == "FloatSliderModel"]
    assert len(sliders) >= 2, "the displayed explorer has no direction sliders"
