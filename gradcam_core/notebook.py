"""The setup every notebook of the report runs first, in one call (:func:`setup`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import torch
import tqdm

#: pandas' text width for tables printed in the notebooks (wide tables wrap less).
DISPLAY_WIDTH = 160
#: Rows pandas shows before it elides (the provenance page lists every weights file).
DISPLAY_MAX_ROWS = 500


def setup(seed: int | None = None, path: str | Path | None = None) -> Path | None:
    """Prepare a notebook run: progress bars as text (no ipywidgets), library ``UserWarning``s
    silenced (captum's and torch's hook notices), pandas' display options, torch's global seed
    when ``seed`` is given. Returns ``path`` (the notebook's output or results folder) as a
    :class:`~pathlib.Path` (None without)."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=tqdm.TqdmWarning)
    pd.set_option("display.width", DISPLAY_WIDTH)
    pd.set_option("display.max_rows", DISPLAY_MAX_ROWS)
    if seed is not None:
        torch.manual_seed(seed)
    return Path(path) if path is not None else None
