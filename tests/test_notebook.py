"""The notebooks' setup (:mod:`gradcam_core.notebook`), with its global effects contained."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import torch

from gradcam_core import notebook


def test_setup_seeds_silences_and_returns_the_folder(tmp_path):
    with warnings.catch_warnings(), pd.option_context("display.width", 80, "display.max_rows", 60):
        with torch.random.fork_rng(devices=[]):
            folder = notebook.setup(5, str(tmp_path / "results"))
            drawn = torch.rand(3)
            torch.manual_seed(5)
            assert torch.equal(drawn, torch.rand(3))
        assert folder == Path(tmp_path / "results") and isinstance(folder, Path)
        assert pd.get_option("display.width") == notebook.DISPLAY_WIDTH
        assert pd.get_option("display.max_rows") == notebook.DISPLAY_MAX_ROWS
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("a hook notice", UserWarning, stacklevel=1)
        assert caught == []  # silenced
        assert notebook.setup() is None
