"""What the task runners share: the result type, batched loading that skips and counts bad
images, mixed precision, the choice of images that a model classifies right, and the explainers
of Tasks 5 and 7 with their settings."""

from __future__ import annotations

import numbers
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import data, methods
from ..models import LoadedModel, load_model, to_model_input
from ..results import per_image_table


@dataclass
class TaskRun:
    """A task's per-image ``table``, the paths of the images it could not read (``skipped``)
    and its wall time in ``seconds``."""

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class MapExamples:
    """Figure data for :func:`gradcam_core.figures.plot_map_grid`: one row per entry of
    ``images`` ([0, 1] pixels at the input size) with its ``titles`` entry beside it, and one
    column per entry of ``maps`` (name -> one map per row, normalised)."""

    images: list[np.ndarray]
    maps: dict[str, np.ndarray]
    titles: list[str]


def with_model_column(rows: list[dict], model: LoadedModel) -> pd.DataFrame:
    """Per-image rows as a table whose first column names the model (no column when empty)."""
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return table


#: Optional mixed precision of the forward and backward passes (``torch.autocast``).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str = "fp32"):
    """``torch.autocast`` for ``precision`` ("bf16", "fp16") on ``device``; a no-op for "fp32".
    Maps come out in the low precision and are compared in float32 (tested to stay within the
    tolerance stated in ``tests/test_tasks_localization.py`` of the fp32 maps)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if PRECISIONS[precision] is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


class ImageBatches:
    """Iterates ``(images on the model's device, record indices)`` over ``records`` in batches of
    ``batch_size`` through a DataLoader (``num_workers`` decoding processes), with a progress bar
    titled ``desc`` unless ``progress`` is false. Unreadable images are skipped; their paths
    collect in :attr:`skipped` as the iteration goes (complete once it has ended).

    The task runners take these loading options (``batch_size``, ``num_workers``, ``progress``)
    as ``**loading`` and pass them here."""

    def __init__(self, model: LoadedModel, records, desc="", *, batch_size=64, num_workers=0, progress=True):
        self.model, self.records = model, records
        self.desc, self.progress = desc, progress
        self.skipped: list[str] = []
        self.loader = DataLoader(
            data.ImageDataset(records, model.spec.transform),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=data.collate_skipping,
            pin_memory=model.device.type == "cuda",
        )

    def __iter__(self):
        batches = tqdm(self.loader, desc=self.desc, disable=not self.progress, unit="batch", mininterval=5)
        for images, indices, failed in batches:
            self.skipped.extend(str(self.records[i].path) for i in failed)
            if images is not None:
                yield to_model_input(images, self.model.device), indices


def load_ilsvrc(data_source: str = "embedded", n_images: int | None = None, model_names=()) -> list:
    """ILSVRC2012 val records from the embedded subset (``"embedded"``) or a folder of official
    val JPEGs; prints a line saying what was loaded (and for which models: a list of names, or
    one name as a string). ``n_images`` must be None (all) or a positive int: another type is a
    ``TypeError`` naming it here, a number below 1 a ``ValueError`` of
    :func:`~gradcam_core.data.load_ilsvrc_val`. (Checked here rather than with
    :mod:`gradcam_core.notebook`, which the runner's layer may not import.)"""
    if n_images is not None and (not isinstance(n_images, numbers.Integral) or isinstance(n_images, bool)):
        kind = type(n_images).__name__
        raise TypeError(f"n_images must be a positive integer or None, got {n_images!r} ({kind})")
    model_names = [model_names] if isinstance(model_names, str) else model_names
    if not isinstance(model_names, list | tuple) or not all(isinstance(name, str) for name in model_names):
        raise TypeError(f"model_names must be a list of model names or one name, got {model_names!r}")
    records = data.load_ilsvrc_val(data_source, n_images=n_images)
    source = "embedded 1,300-image subset (227 px full frames)" if data_source == "embedded" else data_source
    print(f"{len(records)} ILSVRC2012 val images from the {source}; models: {', '.join(model_names)}")
    return records


def correctly_classified(
    model: LoadedModel, records, count: int, batch_size=64, least_confident=False
) -> list:
    """``count`` records that ``model`` classifies right (attacks and the trust study start from
    those): the first ones in order, or with ``least_confident`` the ones with the smallest
    softmax margin between the true class and the runner-up (the easiest to flip, so a small
    attack budget finds some successes; a biased sample, named as such where it is used)."""
    chosen, margins = [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        with torch.no_grad():
            probs = F.softmax(model(model.preprocess([data.load_rgb(r.path) for r in chunk])).float(), dim=1)
        top2 = probs.topk(2, dim=1)
        for record, classes, values in zip(chunk, top2.indices.tolist(), top2.values.tolist()):
            if classes[0] == record.label:
                chosen.append(record)
                margins.append(values[0] - values[1])
        if len(chosen) >= count and not least_confident:
            break
    if least_confident:
        order = np.argsort(margins, kind="stable")
        chosen = [chosen[i] for i in order]
    return chosen[:count]


def background_batch(model: LoadedModel, records, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` records drawn by a seeded permutation, preprocessed for ``model``: the reference
    distribution of GradientSHAP. Unreadable images are left out of it."""
    if count < 1:
        raise ValueError(f"a background batch needs count >= 1 images, got {count}")
    order = np.random.default_rng(seed).permutation(len(records))[:count]
    chosen = ImageBatches(model, [records[i] for i in order], batch_size=count, progress=False)
    images = [batch for batch, _ in chosen]
    if not images:
        raise ValueError(
            f"none of the {len(order)} images drawn for the background batch could be read: "
            f"{', '.join(chosen.skipped)}"
        )
    return torch.cat(images)


def create_explainers(
    names, model: LoadedModel, *, background=None, ig_steps=32, shap_samples=32, seed=0
) -> dict:
    """The explainers of Tasks 5 and 7 by registry name (:func:`gradcam_core.methods.create`),
    with the tasks' settings: ``ig_steps`` for Integrated Gradients; ``background``,
    ``shap_samples`` and ``seed`` for the SHAP estimators (GradientSHAP runs batched and seeded
    over all images at once). Without a ``background``, the SHAP estimators are refused by
    :func:`~gradcam_core.methods.create`, which names the missing setting."""
    shap = {"n_samples": shap_samples, "seed": seed} | (
        {"background": background} if background is not None else {}
    )
    settings = {
        "integrated-gradients": {"n_steps": ig_steps},
        "gradient-shap": shap,
        "shap-gradient-explainer": shap,
    }
    return {name: methods.create(name, model, **settings.get(name, {})) for name in names}


def attribute_all(explainers: dict, images: torch.Tensor, classes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw maps ``(N, K, H, W)`` of every explainer of ``explainers`` (name -> explainer) for
    ``(N, K)`` ``classes``: the members of the CAM family on the same layer share one forward pass
    (:meth:`~gradcam_core.methods.ClassActivationMapping.forward`, then each member's
    ``maps``), the others run their own :meth:`~gradcam_core.methods.Explainer.attribute`."""
    forwards, maps = {}, {}
    for name, explainer in explainers.items():
        if isinstance(explainer, methods.ClassActivationMapping):
            if explainer.layer_name not in forwards:
                forwards[explainer.layer_name] = explainer.forward(images)
            maps[name] = explainer.maps(forwards[explainer.layer_name], classes)
        else:
            maps[name] = explainer.attribute(images, classes)
    return maps


def run_or_read(run_task, model_names, records, out_csv, *, per_image_csv=None, device="auto", **options):
    """Run ``run_task(model, records, **options)`` for every model of ``model_names`` and write
    their joined per-image table to ``out_csv``; or, given ``per_image_csv`` (the merged table
    of a sharded run, ``python -m gradcam_core.runner merge``), read that instead and run
    nothing. Returns ``(table, {model name: run})`` (no runs when read)."""
    runs = {}
    if per_image_csv is None:
        runs = {name: run_task(load_model(name, device=device), records, **options) for name in model_names}
    return per_image_table(runs, out_csv, per_image_csv), runs
