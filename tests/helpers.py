"""Helpers the tests share (imported as ``from tests.helpers import ...``; fixtures are in
``conftest.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from gradcam_core import data, models, standins

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def image_batch(model: models.LoadedModel, records, count: int = 4, start: int = 0) -> torch.Tensor:
    """``count`` embedded images from ``start`` preprocessed for ``model``."""
    return model.preprocess([data.load_rgb(r.path) for r in records[start : start + count]])


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def loaded_module(
    module: nn.Module,
    class_names: list[str],
    *,
    name: str = "tiny",
    target_layer: str = "",
    classifier: str = "",
    input_size: int = 224,
    grayscale: bool = False,
    cam_compatible: bool = False,
) -> models.LoadedModel:
    """A hand-made module as a registry model on the CPU: its input is [0, 1] pixels (no
    normalisation), its logits the class scores."""
    spec = models.ModelSpec(
        name,
        "test model",
        lambda weights_path: module,
        target_layer,
        classifier,
        normalize=identity,
        class_names=lambda: list(class_names),
        cam_compatible=cam_compatible,
        input_size=input_size,
        grayscale=grayscale,
    )
    return models.LoadedModel(spec, models.prepare(module, CPU), list(class_names), CPU)


def random_standin(name: str, folder: Path, seed: int = 0) -> models.LoadedModel:
    """The stand-in ``name`` with random weights (seeded), saved as a checkpoint in ``folder``
    and loaded through the registry."""
    torch.manual_seed(seed)
    path = Path(folder) / f"{name}-random.pt"
    torch.save({"state_dict": standins.architecture(name).state_dict()}, path)
    return models.load_model(name, weights_path=str(path), device="cpu")


def run_papermill(notebook: str, params: dict, out: Path) -> subprocess.CompletedProcess:
    """Execute ``notebooks/<notebook>.ipynb`` with papermill and ``params`` into ``out``."""
    args = [
        str(Path(sys.executable).parent / "papermill"),
        "--cwd",
        str(ROOT / "notebooks"),
        str(ROOT / "notebooks" / f"{notebook}.ipynb"),
        str(out),
        "-y",
        json.dumps(params),
    ]
    return subprocess.run(args, capture_output=True, text=True)


def run_full_profile_notebook(notebook: str, val_folder: Path, tmp_path: Path, **params):
    """Execute a Task 1 / Task 2 notebook on a folder of full-size val JPEGs (3 images, the CPU,
    SqueezeNet), assert it succeeded, and return the per-image table it wrote."""
    import pandas as pd

    out_dir = tmp_path / "results"
    params = {
        "data_source": str(val_folder),
        "n_images": 3,
        "batch_size": 2,
        "device": "cpu",
        "output_dir": str(out_dir),
        "model_names": ["squeezenet1_1"],
        **params,
    }
    result = run_papermill(notebook, params, tmp_path / "out.ipynb")
    assert result.returncode == 0, result.stderr[-3000:]
    return pd.read_csv(out_dir / "per_image.csv")
