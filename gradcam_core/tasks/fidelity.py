"""Task 7 (the seed's; metrics of Pope et al., CVPR 2019, Sec. 4.3, carried from graph nodes to
pixels): fidelity and contrastivity of Grad-CAM, GradientSHAP and Integrated Gradients on the
MNIST and CIFAR-10 stand-ins trained here."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import metrics, training
from ..maps import normalized_positive
from ..models import LoadedModel, to_model_input
from ..results import write_table
from .common import TaskRun, create_explainers, with_model_column

#: Task 7's methods.
FIDELITY_METHODS = ("grad-cam", "gradient-shap", "integrated-gradients")


@dataclass
class FidelityStandIn:
    """A stand-in of Task 7 ready to evaluate: its training record, the loaded model and the
    splits it was trained and is tested on."""

    dataset: str
    trained: training.TrainedModel
    model: LoadedModel
    train: training.Split
    test: training.Split

    def test_accuracy(self) -> float:
        """Top-1 accuracy on the whole test split."""
        return training.accuracy(self.model.module, self.test)


@dataclass
class FidelityExamples:
    """Figure data: a few images (H x W, or H x W x 3), their top-2 classes and each method's
    0..1 saliency ``(n, 2, H, W)`` for those classes."""

    images: np.ndarray
    classes: np.ndarray
    maps: dict[str, np.ndarray]


@dataclass
class FidelityRun(TaskRun):
    """Task 7's per-image table (one row per image, method and threshold: ``correct_before``,
    ``correct_after``, ``correct_after_random``, ``occluded_fraction``, ``contrastivity``), the
    figure data, and the training time this run spent (0 when the stand-in came from the
    cache)."""

    dataset: str = ""
    model_name: str = ""
    training_seconds: float = 0.0
    examples: FidelityExamples | None = None

    @property
    def total_seconds(self) -> float:
        """Training (when it happened in this run) plus maps and metrics."""
        return self.training_seconds + self.seconds


def prepare_standin(dataset: str, device="auto") -> FidelityStandIn:
    """The ``<dataset>-cnn`` stand-in, trained on first use (else loaded from the cache), with
    its splits."""
    trained, model = training.load_standin(f"{dataset}-cnn", device=device)
    train, test = training.training_data(trained.config)
    return FidelityStandIn(dataset, trained, model, train, test)


def saliency_maps(explainer, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Maps on Pope et al.'s 0..1 scale: the positive evidence for each class (Grad-CAM's maps
    are non-negative already, IG and SHAP are signed), min-max normalised per image and class
    (:func:`gradcam_core.maps.normalized_positive`)."""
    return normalized_positive(explainer.attribute(images, classes).detach())


def run_fidelity_contrastivity(
    model: LoadedModel,
    images,
    labels,
    explainers: dict,
    *,
    thresholds=(0.01, 0.1),
    batch_size=100,
    fill=0.0,
    seed=0,
    progress=True,
) -> FidelityRun:
    """Task 7 (Pope et al. 2019, Sec. 4.3) on ``images`` ([0, 1] pixels, the network's input):
    maps for each image's two highest-scoring classes. Per image, method and threshold:

    - fidelity inputs: whether the prediction is right before and after occluding (setting to
      ``fill``; 0 is black) the pixels whose saliency for the predicted class exceeds the
      threshold, and, as a reference, after occluding as many randomly chosen pixels (seeded);
    - contrastivity: the normalised Hamming distance between the binarised maps of the top-1 and
      top-2 classes (:func:`metrics.contrastivity`).

    ``explainers`` maps method names to explainers
    (:func:`~gradcam_core.tasks.common.create_explainers` makes Task 7's); ``seed`` draws the
    random pixels.
    """
    device = model.device
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    rows = []
    firsts = range(0, len(images), batch_size)
    for first in tqdm(firsts, desc=f"Task 7 {model.name}", disable=not progress, unit="batch", mininterval=5):
        x = to_model_input(images[first : first + batch_size], device)
        y = labels[first : first + batch_size].to(device)
        with torch.no_grad():
            top2 = model(x).topk(2, dim=1).indices
        correct_before = (top2[:, 0] == y).cpu().numpy()
        noise = torch.rand(x.shape[0], *x.shape[-2:], generator=generator).to(device)
        ranks = noise.flatten(1).argsort(1).argsort(1).view(noise.shape)  # random order of the pixels
        for method, explainer in explainers.items():
            saliency = saliency_maps(explainer, x, top2)  # (n, 2, H, W)
            for threshold in thresholds:
                masks = metrics.mask_above_level(saliency, threshold)
                top1_mask = masks[:, 0]
                count = top1_mask.flatten(1).sum(1)
                random_mask = ranks < count[:, None, None]
                with torch.no_grad():
                    after = model(torch.where(top1_mask[:, None], torch.full_like(x, fill), x)).argmax(1)
                    after_random = model(
                        torch.where(random_mask[:, None], torch.full_like(x, fill), x)
                    ).argmax(1)
                contrast = metrics.contrastivity(masks[:, 0].cpu().numpy(), masks[:, 1].cpu().numpy())
                fraction = (count.float() / top1_mask[0].numel()).cpu().numpy()
                for i in range(x.shape[0]):
                    rows.append(
                        {
                            "index": first + i,
                            "label": int(y[i]),
                            "predicted": int(top2[i, 0]),
                            "second": int(top2[i, 1]),
                            "method": method,
                            "threshold": threshold,
                            "correct_before": bool(correct_before[i]),
                            "correct_after": bool(after[i] == y[i]),
                            "correct_after_random": bool(after_random[i] == y[i]),
                            "occluded_fraction": float(fraction[i]),
                            "contrastivity": float(contrast[i]),
                        }
                    )
    return FidelityRun(with_model_column(rows, model), [], time.perf_counter() - start, model_name=model.name)


def fidelity_examples(model: LoadedModel, images: torch.Tensor, explainers: dict) -> FidelityExamples:
    """For a few images: each method's 0..1 saliency for the top-1 and top-2 classes (figures)."""
    x = to_model_input(images, model.device)
    with torch.no_grad():
        top2 = model(x).topk(2, dim=1).indices
    maps = {
        method: saliency_maps(explainer, x, top2).cpu().numpy() for method, explainer in explainers.items()
    }
    pixels = images.permute(0, 2, 3, 1).squeeze(-1).cpu().numpy()
    return FidelityExamples(pixels, top2.cpu().numpy(), maps)


def run_standin(
    standin: FidelityStandIn, *, n_eval: int, n_background: int, n_examples: int, seed=0, **options
):
    """Task 7 on one stand-in: ``n_eval`` test images drawn with ``seed``; the explainers of
    ``methods`` (default :data:`FIDELITY_METHODS`, with ``ig_steps`` and ``shap_samples``) with
    GradientSHAP's background ``n_background`` training images drawn with ``seed``; the figure
    data of the first ``n_examples`` evaluated images. The other ``options`` go to
    :func:`run_fidelity_contrastivity` (``thresholds``, ``batch_size``, ...). Returns a
    :class:`FidelityRun`."""
    evaluation = standin.test.sample(n_eval, seed)
    background = standin.train.sample(n_background, seed).images
    methods = options.pop("methods", FIDELITY_METHODS)
    settings = {k: options.pop(k) for k in ("ig_steps", "shap_samples") if k in options}
    explainers = create_explainers(methods, standin.model, background=background, seed=seed, **settings)
    run = run_fidelity_contrastivity(
        standin.model, evaluation.images, evaluation.labels, explainers, seed=seed, **options
    )
    run.dataset, run.training_seconds = standin.dataset, standin.trained.seconds_this_run
    run.examples = fidelity_examples(standin.model, evaluation.images[:n_examples], explainers)
    return run


def joined_table(runs: dict[str, FidelityRun], out_csv) -> pd.DataFrame:
    """The runs' tables joined and written to ``out_csv``; prints the rows and images counted."""
    table = pd.concat([run.table for run in runs.values()], ignore_index=True)
    write_table(table, out_csv)
    counts = ", ".join(f"{run.table['index'].nunique()} {run.dataset}" for run in runs.values())
    print(f"{len(table)} (image, method, threshold) rows over {counts} test images")
    return table
