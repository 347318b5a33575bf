"""Task 6 (the seed's, after Sundararajan et al. 2017 on sensitivity): does Grad-CAM notice the
single pixel that flips a prediction (one-pixel attacks), and how do maps change under FGSM?"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import data, metrics
from ..attacks import fgsm, one_pixel_attack
from ..maps import normalize_maps, resize_to_image
from ..methods import GradCAM
from ..models import LoadedModel, load_model
from ..results import write_table
from .common import TaskRun, correctly_classified

#: How many successful one-pixel attacks a run keeps for its figure.
FIGURE_CASES = 4


@dataclass
class OnePixelCase:
    """Figure data of one successful one-pixel attack: the image ([0, 1] pixels, H x W x 3),
    the true class's normalised map before and after, the attacked pixel ``(x, y)`` and a
    title naming the original and the adversarial class."""

    image: np.ndarray
    before: np.ndarray
    after: np.ndarray
    xy: tuple[int, int]
    title: str


@dataclass
class OnePixelRun(TaskRun):
    """The one-pixel part's per-image table (``success``, the pixel ``x, y``, the
    ``adversarial_class``, ``evaluations``, and the normalised Grad-CAM value of the true class
    at the pixel ``before`` and ``after``) and the first successful cases for a figure."""

    cases: list[OnePixelCase] = field(default_factory=list)


class FGSMRun(TaskRun):
    """The FGSM part's per-image table: one row per image and epsilon with ``success``, the rank
    correlations ``rank_corr_true`` and ``rank_corr_adversarial`` between the clean and the
    attacked maps, and ``pointing_hit_true``."""


def normalized_gradcam(gradcam: GradCAM, model: LoadedModel, pixels: torch.Tensor, classes) -> np.ndarray:
    """Normalised Grad-CAM maps ``(N, K, H, W)`` of [0, 1] ``pixels`` for ``classes``."""
    return normalize_maps(gradcam.attribute(model.normalize(pixels), classes)).cpu().numpy()


def run_one_pixel_sensitivity(
    model: LoadedModel, records, *, population=40, max_iterations=10, seed=0, progress=True
) -> OnePixelRun:
    """Task 6, one-pixel part: attack each (correctly classified) image; for every successful
    attack, the normalised Grad-CAM value of the original class at the attacked pixel before and
    after. Returns the per-image table and, for a figure, the first successful cases."""
    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows, cases = [], []
    for record in tqdm(records, desc=f"one-pixel {model.name}", disable=not progress, mininterval=5):
        pixels = model.pixels([data.load_rgb(record.path)])[0]
        result = one_pixel_attack(
            model, pixels, record.label, population=population, max_iterations=max_iterations, seed=seed
        )
        row = {
            "model": model.name,
            "image": record.name,
            "label": record.label,
            "success": result.success,
            "x": result.x,
            "y": result.y,
            "adversarial_class": result.adversarial_class,
            "evaluations": result.evaluations,
            "before": np.nan,
            "after": np.nan,
        }
        if result.success:
            attacked = result.apply(pixels)
            maps = normalized_gradcam(gradcam, model, torch.stack([pixels, attacked]), record.label)[:, 0]
            row["before"], row["after"] = (
                float(maps[0, result.y, result.x]),
                float(maps[1, result.y, result.x]),
            )
            if len(cases) < FIGURE_CASES:
                names = model.class_names
                cases.append(
                    OnePixelCase(
                        pixels.permute(1, 2, 0).cpu().numpy(),
                        maps[0],
                        maps[1],
                        (result.x, result.y),
                        f"{names[record.label]} -> {names[result.adversarial_class]}",
                    )
                )
        rows.append(row)
    return OnePixelRun(pd.DataFrame(rows), [], time.perf_counter() - start, cases)


def run_fgsm(
    model: LoadedModel,
    records,
    epsilons,
    *,
    tolerance=metrics.POINTING_TOLERANCE,
    batch_size=16,
    progress=True,
) -> FGSMRun:
    """Task 6, FGSM part: for each epsilon and (correctly classified) image, whether the attack
    changes the top-1 class; the rank correlation between the clean and the attacked Grad-CAM
    map, for the true class and for the class predicted after the attack; and whether the true
    class's map on the attacked image still points into a ground-truth box."""
    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows = []
    firsts = range(0, len(records), batch_size)
    for first in tqdm(firsts, desc=f"FGSM {model.name}", disable=not progress, mininterval=5):
        chunk = records[first : first + batch_size]
        pixels = model.pixels([data.load_rgb(r.path) for r in chunk])
        labels = torch.tensor([r.label for r in chunk], device=pixels.device)
        for epsilon in epsilons:
            attacked = fgsm(model, pixels, labels, epsilon)
            with torch.no_grad():
                adversarial = model(model.normalize(attacked)).argmax(1)
            classes = torch.stack([labels, adversarial], dim=1)
            clean = normalized_gradcam(gradcam, model, pixels, classes)
            after = normalized_gradcam(gradcam, model, attacked, classes)
            for i, record in enumerate(chunk):
                heat = resize_to_image(torch.from_numpy(after[i, :1]), record.size)[0]
                success = int(adversarial[i]) != record.label
                rows.append(
                    {
                        "model": model.name,
                        "image": record.name,
                        "epsilon": epsilon,
                        "success": success,
                        "rank_corr_true": metrics.rank_correlation(clean[i, 0], after[i, 0]),
                        "rank_corr_adversarial": metrics.rank_correlation(clean[i, 1], after[i, 1])
                        if success
                        else np.nan,
                        "pointing_hit_true": metrics.pointing_hit(heat, record.boxes, tolerance),
                    }
                )
    return FGSMRun(pd.DataFrame(rows), [], time.perf_counter() - start)


def run_models(
    model_names,
    records,
    *,
    n_attack_images: int,
    n_fgsm_images: int,
    epsilons,
    least_confident=True,
    device="auto",
    population=40,
    max_iterations=10,
    tolerance=metrics.POINTING_TOLERANCE,
    seed=0,
) -> tuple[dict[str, OnePixelRun], dict[str, FGSMRun]]:
    """Both parts of Task 6 for every model: one-pixel attacks on ``n_attack_images`` correctly
    classified images (the least confident ones with ``least_confident``: a biased sample, the
    easiest to flip) and FGSM on the first ``n_fgsm_images`` correctly classified ones."""
    one_pixel, fgsm_runs = {}, {}
    for name in model_names:
        model = load_model(name, device=device)
        targets = correctly_classified(model, records, n_attack_images, least_confident=least_confident)
        one_pixel[name] = run_one_pixel_sensitivity(
            model, targets, population=population, max_iterations=max_iterations, seed=seed
        )
        fgsm_targets = correctly_classified(model, records, n_fgsm_images)
        fgsm_runs[name] = run_fgsm(model, fgsm_targets, epsilons, tolerance=tolerance)
    return one_pixel, fgsm_runs


def joined_tables(one_pixel: dict, fgsm_runs: dict, output_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs' tables joined and written as ``one_pixel.csv`` and ``fgsm.csv`` in
    ``output_dir``; prints how many attacks they hold."""
    attacks = pd.concat([run.table for run in one_pixel.values()], ignore_index=True)
    fgsm_table = pd.concat([run.table for run in fgsm_runs.values()], ignore_index=True)
    write_table(attacks, Path(output_dir) / "one_pixel.csv")
    write_table(fgsm_table, Path(output_dir) / "fgsm.csv")
    print(f"{len(attacks)} one-pixel attacks, {len(fgsm_table)} FGSM (image, epsilon) pairs")
    return attacks, fgsm_table
