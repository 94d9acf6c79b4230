"""How figures show themselves in a notebook."""

from __future__ import annotations

import numpy as np
import torch

from ssd_lib.reporting.plots import grid_figure, loss_figure


def test_image_grids_show_as_jpeg_and_plots_as_png():
    images = torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8)
    grid = grid_figure(images, "samples", "label")
    assert grid._repr_png_() is None
    assert grid._repr_jpeg_()[:3] == b"\xff\xd8\xff"  # JPEG start-of-image marker
    history = {"step": np.arange(1, 11), "loss_d": np.ones(10), "loss_g": np.ones(10)}
    plot = loss_figure(history, "label")
    assert plot._repr_jpeg_() is None
    assert plot._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
