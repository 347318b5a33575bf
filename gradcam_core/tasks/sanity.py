"""Sanity checks for saliency maps (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
https://arxiv.org/abs/1810.03292): does a method's map change when what the model learned is
destroyed?

- **Model-parameter randomisation, cascading** (their Sec. 3, "cascading randomization"): the
  weights are re-initialised from the top (logits) down to the first convolution, one more group of
  layers at each step (:data:`CASCADE_STEPS`, :func:`randomised_layers`), and each step's map, for
  the class the *original* model predicted, is compared with the original model's map
  (:func:`run_cascading_randomisation`).
- **Data randomisation** (their Sec. 4): the map of the MNIST stand-in is compared with the map of
  the same network trained the same way on randomly permuted training labels
  (``mnist-cnn-permuted-labels``), which have nothing to teach about digits
  (:func:`run_data_randomisation`).

Similarity metrics (their Sec. 3): Spearman rank correlation of the absolute maps and of the
signed maps, SSIM and the Pearson correlation of HOG features of the absolute maps normalised to
[0, 1] (:func:`gradcam_core.metrics.spearman_abs`, :func:`~gradcam_core.metrics.spearman_signed`,
:func:`~gradcam_core.metrics.ssim_similarity`, :func:`~gradcam_core.metrics.hog_similarity`).
The level a method must fall to is the similarity between the original maps of two unrelated
images (image ``i`` against image ``i + 1``), rows with step ``"unrelated-images"``
(:data:`UNRELATED`); :func:`sanity_verdicts` states the rule.

Maps compared (one map per image and method; Grad-CAM's is non-negative already):

- *signed map*: pixel attributions summed over the colour channels (captum's convention, and
  Adebayo et al.'s diverging visualisation) -- used by ``spearman_signed`` only;
- *absolute map*: the largest absolute value over the colour channels (Simonyan et al. 2014, the
  project's ``abs_max`` reduction: the maps the explainers give for Backprop, Guided Backprop and
  Guided Grad-CAM) -- ``spearman_abs`` ranks it; min-max normalised to [0, 1] with
  :func:`gradcam_core.maps.normalize_maps` (as Adebayo et al. normalise absolute maps; without
  their 99th-percentile clipping) it is what SSIM and HOG compare.

A constant map (all zeros, say) has no ranking and no gradient: its Spearman and HOG similarities
are NaN, and the row says ``constant_map``. Such rows are left out of the summaries and verdicts
for every metric -- SSIM too, which is defined but would then measure the model's dead score, not
the method -- and counted as missing. It happens to SqueezeNet once its classifier is random (for
about half of the images once the fire modules are random too): the class score is the average of
a *rectified* class map, and where that map is negative everywhere for the explained class the
score is 0, and so is every gradient, hence every map.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from .. import data, metrics, training
from ..maps import for_display, normalize_maps, reduce_channels
from ..methods import PixelExplainer
from ..models import LoadedModel, get_layer, to_model_input
from ..statistics import CONFIDENCE, mean_with_interval, paired_difference
from .common import ImageBatches, MapExamples, TaskRun, create_explainers

#: The methods checked (Adebayo et al. check Gradient, Guided Backprop, Grad-CAM, Guided Grad-CAM,
#: Integrated Gradients and more), by registry name.
SANITY_METHODS = ("grad-cam", "guided-backprop", "guided-grad-cam", "backprop", "integrated-gradients")

#: Integration steps of Integrated Gradients (captum's Gauss-Legendre rule): each costs a forward and
#: a backward pass per map, so the method dominates the run time.
IG_STEPS = 8

#: Images per batch by default.
BATCH_SIZE = 25

#: The similarity columns of the per-image tables (Adebayo et al. 2018, Sec. 3).
SIMILARITY_METRICS = ("spearman_abs", "spearman_signed", "ssim", "hog")

#: The metrics :func:`sanity_verdicts` judges by.
VERDICT_METRICS = ("spearman_abs", "ssim")

#: The step name of the reference rows: the original maps of image ``i`` against image ``i + 1``.
UNRELATED = "unrelated-images"

#: The columns that identify a row of the cascade's per-image table (image, step, the other image
#: of a pair, method): the keys on which a recomputation is matched to a published run.
CASCADE_KEYS = ["model", "index", "step", "other_index", "method"]

#: The step name of the data-randomisation rows: true-label model against permuted-label model.
PERMUTED_LABELS = "permuted-labels"

#: HOG cell size for the 28 px MNIST maps (7 x 7 cells); 224 px maps use
#: :data:`gradcam_core.metrics.HOG_PIXELS_PER_CELL`.
MNIST_HOG_PIXELS_PER_CELL = 4


class CascadeStep(NamedTuple):
    """One step of a cascade: its ``name`` and the layers (module names) it randomises in addition
    to those of the steps before it."""

    name: str
    layers: tuple[str, ...]


def _mobilenet_blocks(first: int, last: int) -> tuple[str, ...]:
    """MobileNet v1's depthwise-separable blocks ``first..last``: each a depthwise and a pointwise
    convolution with their BatchNorm layers."""
    return tuple(
        f"features.conv_{kind}_{block}{suffix}"
        for block in range(first, last + 1)
        for kind in ("dw", "pw")
        for suffix in ("", "_bn")
    )


#: The cascade of each model, top (logits) first: each step randomises one more group of layers,
#: cumulatively; the last step leaves nothing trained. SqueezeNet 1.1 (torchvision's indices;
#: fire2..fire9 are ``features.3, 4, 6, 7, 9, 10, 11, 12``): the 1x1-conv classifier, fire8-9,
#: fire6-7, fire2-5, conv1. MobileNet v1 0.75: the classifier, blocks 12-13 (1024 channels), blocks
#: 6-11 (512), blocks 1-5, conv1 (each with its BatchNorm). mnist-cnn: the classifier, then its
#: three conv + BatchNorm blocks top-down. Adebayo et al. (Sec. 3) go block by block through
#: Inception v3 (17 steps); five groups keep the run within minutes on two CPU cores.
CASCADE_STEPS: dict[str, tuple[CascadeStep, ...]] = {
    "squeezenet1_1": (
        CascadeStep("classifier", ("classifier.1",)),
        CascadeStep("fire8-9", ("features.11", "features.12")),
        CascadeStep("fire6-7", ("features.9", "features.10")),
        CascadeStep("fire2-5", ("features.3", "features.4", "features.6", "features.7")),
        CascadeStep("conv1", ("features.0",)),
    ),
    "mobilenet_v1_0.75": (
        CascadeStep("classifier", ("classifier",)),
        CascadeStep("blocks12-13", _mobilenet_blocks(12, 13)),
        CascadeStep("blocks6-11", _mobilenet_blocks(6, 11)),
        CascadeStep("blocks1-5", _mobilenet_blocks(1, 5)),
        CascadeStep("conv1", ("features.conv1", "features.conv1_bn")),
    ),
    "mnist-cnn": (
        CascadeStep("classifier", ("classifier",)),
        CascadeStep("conv3", ("features.9", "features.10")),
        CascadeStep("conv2", ("features.5", "features.6")),
        CascadeStep("conv1", ("features.1", "features.2")),
    ),
}


def cascade_steps(model_name: str) -> tuple[CascadeStep, ...]:
    """:data:`CASCADE_STEPS` of ``model_name``, with an error naming the models that have one."""
    if model_name not in CASCADE_STEPS:
        raise ValueError(f"no cascade for model {model_name!r}; cascades: {', '.join(CASCADE_STEPS)}")
    return CASCADE_STEPS[model_name]


def cumulative_layers(steps: Sequence[CascadeStep]) -> list[tuple[str, ...]]:
    """For each step, every layer randomised once it is reached: its own and those of the steps
    above it (Adebayo et al.'s cascade is cumulative)."""
    return [
        tuple(itertools.chain.from_iterable(step.layers for step in steps[: k + 1]))
        for k in range(len(steps))
    ]


def layer_seed(seed: int, layer_name: str) -> int:
    """The seed of ``layer_name``'s random weights: fixed per (seed, layer), so a layer gets the
    same weights at every step that randomises it, and the cascade is one model progressively
    randomised, whichever step is computed first (crc32, stable across processes)."""
    return zlib.crc32(f"{seed}:{layer_name}".encode())


@contextmanager
def randomised_layers(module: nn.Module, layer_names: Iterable[str], seed: int = 0):
    """Within this block, the layers ``layer_names`` of ``module`` (module names, e.g.
    ``"features.12"``, and every module inside them) carry freshly initialised weights: each
    sub-module's own ``reset_parameters()`` (PyTorch's default initialisation of that layer type;
    a BatchNorm layer gets weight 1, bias 0 and reset running statistics), seeded per layer by
    :func:`layer_seed` under ``torch.random.fork_rng``, so the global generators are left as they
    were. On exit -- also on an exception inside the block -- every parameter and buffer of those
    layers is restored bit for bit (in place: the same tensor objects, strides kept).

    Adebayo et al. (Sec. 3) re-initialise the trainable variables of each block with its
    initialiser (their BatchNorm moving statistics stay); resetting the running statistics too
    leaves nothing learned in a fully randomised model. A layer without any resettable module is
    refused (a misspelt group would otherwise randomise nothing)."""
    names = list(dict.fromkeys(layer_names))
    layers = {name: get_layer(module, name) for name in names}
    for name, layer in layers.items():
        if not any(hasattr(sub, "reset_parameters") for sub in layer.modules()):
            raise ValueError(f"layer {name!r} has no parameters to randomise")
    saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for layer in layers.values():
        for tensor in itertools.chain(layer.parameters(), layer.buffers()):
            saved.setdefault(id(tensor), (tensor, tensor.detach().clone()))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            for name, layer in layers.items():
                torch.manual_seed(layer_seed(seed, name))
                for sub in layer.modules():
                    if hasattr(sub, "reset_parameters"):
                        sub.reset_parameters()
        yield module
    finally:
        with torch.no_grad():
            for tensor, original in saved.values():
                tensor.copy_(original)


# --------------------------------------------------------------------------------------------
# Maps and their similarities
# --------------------------------------------------------------------------------------------


def sanity_explainers(model: LoadedModel, methods=SANITY_METHODS, ig_steps: int = IG_STEPS) -> dict:
    """The explainers that :func:`method_maps` runs for ``methods``: Guided Grad-CAM is not run
    itself but assembled from Grad-CAM and Guided Backprop (run once each, also when only Guided
    Grad-CAM is asked for)."""
    needed = [m for m in methods if m != "guided-grad-cam"]
    if "guided-grad-cam" in methods:
        needed += [m for m in ("grad-cam", "guided-backprop") if m not in needed]
    return create_explainers(needed, model, ig_steps=ig_steps)


class MethodMaps(NamedTuple):
    """One method's maps for a batch, ``(N, H, W)`` float32: ``signed`` (colour channels summed),
    ``absolute`` (largest absolute value over the channels) and ``normalised`` (``absolute`` on
    [0, 1], :func:`~gradcam_core.maps.normalize_maps`)."""

    signed: np.ndarray
    absolute: np.ndarray
    normalised: np.ndarray


def method_maps(
    explainers: dict, images: torch.Tensor, classes: torch.Tensor, methods=SANITY_METHODS, timings=None
) -> dict[str, MethodMaps]:
    """Each method's maps (:class:`MethodMaps`) of ``images`` for one class per image
    (``classes``, ``(N,)``). Pixel-space explainers give pixel attributions ``(N, C, H, W)`` once,
    reduced both ways; Guided Grad-CAM is Guided Backprop's attributions times the Grad-CAM map
    upsampled to the input before any normalisation (:class:`gradcam_core.methods.GuidedGradCAM`'s
    definition, paper Sec. 3.1), from the two maps already computed. ``timings`` (a dict), when
    given, accumulates the seconds spent per method."""
    target = classes[:, None]
    raw = {}
    for name, explainer in explainers.items():
        start = time.perf_counter()
        if isinstance(explainer, PixelExplainer):
            raw[name] = explainer.attribute_pixels(images, target)[:, 0].detach()
        else:
            raw[name] = explainer.attribute(images, target)[:, 0].detach()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
    if "guided-grad-cam" in methods:
        start = time.perf_counter()
        raw["guided-grad-cam"] = raw["guided-backprop"] * raw["grad-cam"][:, None]
        if timings is not None:
            timings["guided-grad-cam"] = timings.get("guided-grad-cam", 0.0) + time.perf_counter() - start
    out = {}
    for name in methods:
        maps = raw[name].float()
        if maps.dim() == 4:  # pixel attributions (N, C, H, W)
            signed, absolute = reduce_channels(maps, "sum"), reduce_channels(maps, "abs_max")
        else:
            signed, absolute = maps, maps.abs()
        out[name] = MethodMaps(
            signed.cpu().numpy(), absolute.cpu().numpy(), normalize_maps(absolute).cpu().numpy()
        )
    return out


@dataclass
class PreparedMap:
    """One map made ready to be compared with many others (:func:`similarities`): the average
    ranks of its signed and absolute values, its normalised absolute map and the HOG features of
    that (:func:`gradcam_core.metrics.hog_features`). Each map is ranked and described once, not
    once per comparison."""

    signed_ranks: np.ndarray
    absolute_ranks: np.ndarray
    normalised: np.ndarray
    hog: np.ndarray

    @property
    def constant(self) -> bool:
        """Whether the absolute map is constant (nothing to rank: its Spearman and HOG are NaN)."""
        return bool(np.all(self.absolute_ranks == self.absolute_ranks[0]))


def prepare_map(
    signed: np.ndarray, absolute: np.ndarray, normalised: np.ndarray, hog_cell: int
) -> PreparedMap:
    """A :class:`PreparedMap` of one ``(H, W)`` map in its three forms (:class:`MethodMaps`)."""
    absolute_ranks = stats.rankdata(absolute.ravel())
    same = signed is absolute or np.array_equal(signed, absolute)
    signed_ranks = absolute_ranks if same else stats.rankdata(signed.ravel())
    return PreparedMap(signed_ranks, absolute_ranks, normalised, metrics.hog_features(normalised, hog_cell))


def similarities(a: PreparedMap, b: PreparedMap) -> dict[str, float]:
    """The four similarities of Adebayo et al. (Sec. 3) between two prepared maps: Spearman's rho
    is Pearson's correlation of the average ranks (what ``scipy.stats.spearmanr`` computes), so
    ``spearman_abs`` and ``spearman_signed`` equal :func:`gradcam_core.metrics.spearman_abs` and
    :func:`~gradcam_core.metrics.spearman_signed` of the maps; ``ssim`` is
    :func:`~gradcam_core.metrics.ssim_similarity` and ``hog``
    :func:`~gradcam_core.metrics.hog_similarity` of the normalised absolute maps (tested equal).
    NaN where a map is constant (no ranking, no gradient), as those functions give."""
    return {
        "spearman_abs": metrics.pearson_correlation(a.absolute_ranks, b.absolute_ranks),
        "spearman_signed": metrics.pearson_correlation(a.signed_ranks, b.signed_ranks),
        "ssim": metrics.ssim_similarity(a.normalised, b.normalised),
        "hog": metrics.pearson_correlation(a.hog, b.hog),
    }


def _prepared(maps: dict[str, MethodMaps], hog_cell: int, timings: dict) -> list[dict[str, PreparedMap]]:
    """Per image, each method's :class:`PreparedMap` (the time spent counted as ``similarity``)."""
    start = time.perf_counter()
    count = len(next(iter(maps.values())).signed)
    prepared = [
        {
            method: prepare_map(m.signed[i], m.absolute[i], m.normalised[i], hog_cell)
            for method, m in maps.items()
        }
        for i in range(count)
    ]
    timings["similarity"] = timings.get("similarity", 0.0) + time.perf_counter() - start
    return prepared


def _similarity_rows(base: dict, reference: dict[str, PreparedMap], other: dict[str, PreparedMap], timings):
    start = time.perf_counter()
    rows = [
        base
        | {"method": method, "constant_map": reference[method].constant or other[method].constant}
        | similarities(reference[method], other[method])
        for method in reference
    ]
    timings["similarity"] = timings.get("similarity", 0.0) + time.perf_counter() - start
    return rows


class _UnrelatedPairs:
    """The reference rows: each image's original maps against the next image's (the last image
    against the first), as images arrive batch by batch."""

    def __init__(self, rows: list[dict]):
        self.first = self.previous = None
        self.rows = rows

    def add(self, info: dict, maps: dict[str, PreparedMap], timings):
        if self.previous is None:
            self.first = (info, maps)
        else:
            self._pair(self.previous, (info, maps), timings)
        self.previous = (info, maps)

    def close(self, timings):
        if self.first is not None and self.previous is not None and self.previous[0] is not self.first[0]:
            self._pair(self.previous, self.first, timings)

    def _pair(self, this, other, timings):
        info = this[0] | {"step_index": 0, "step": UNRELATED, "other_index": other[0]["index"]}
        self.rows.extend(_similarity_rows(info, this[1], other[1], timings))


# --------------------------------------------------------------------------------------------
# Model-parameter randomisation (cascading)
# --------------------------------------------------------------------------------------------


@dataclass
class SanityRun(TaskRun):
    """A sanity check's per-image table: one row per (image, step, method) with the similarities
    :data:`SIMILARITY_METRICS` of the map at that step to the original map, ``constant_map``
    (whether either map is constant, so Spearman and HOG are NaN), and the reference rows
    (step :data:`UNRELATED`, ``step_index`` 0, ``other_index`` the other image). ``timings``:
    seconds spent per method on maps (Guided Grad-CAM's is only the product of two maps already
    computed) and on ``similarity`` (ranking, normalising, HOG features and comparing)."""

    timings: dict[str, float] = field(default_factory=dict)


def _cascade_batch(model, explainers, methods, steps, images, infos, seed, hog_cell, timings, pairs, rows):
    with torch.no_grad():
        classes = model.module(images).argmax(1)
    for info, predicted in zip(infos, classes.tolist()):
        info["predicted"] = predicted
    original = _prepared(method_maps(explainers, images, classes, methods, timings), hog_cell, timings)
    for info, maps in zip(infos, original):
        pairs.add(info, maps, timings)
    for k, (step, layers) in enumerate(zip(steps, cumulative_layers(steps))):
        with randomised_layers(model.module, layers, seed):
            randomised = _prepared(
                method_maps(explainers, images, classes, methods, timings), hog_cell, timings
            )
        for info, reference, other in zip(infos, original, randomised):
            base = info | {"step_index": k + 1, "step": step.name, "other_index": info["index"]}
            rows.extend(_similarity_rows(base, reference, other, timings))


def run_cascading_randomisation(
    model: LoadedModel,
    records,
    *,
    methods=SANITY_METHODS,
    n_images: int | None = 100,
    ig_steps: int = IG_STEPS,
    batch_size: int = BATCH_SIZE,
    steps: Sequence[CascadeStep] | None = None,
    hog_cell: int = metrics.HOG_PIXELS_PER_CELL,
    progress: bool = True,
    seed: int = 0,
    num_workers: int = 0,
) -> SanityRun:
    """Adebayo et al. 2018, Sec. 3, cascading model-parameter randomisation, on the first
    ``n_images`` of ``records`` (all when None): for each image the original model's top-1 class
    is explained by the original model and after each cumulative step of ``steps`` (default
    :data:`CASCADE_STEPS` of the model; :func:`randomised_layers` with ``seed``, the weights
    restored after each step) -- always that class, whatever the randomised model predicts. Rows:
    (image, step, method) with the similarities of the step's map to the original map, plus the
    :data:`UNRELATED` reference rows (the original maps of image ``i`` and ``i + 1``).

    Cost: per image and step, one pass of every method; Integrated Gradients takes ``ig_steps``
    backward passes and dominates. Guided Grad-CAM reuses Grad-CAM and Guided Backprop.
    ``hog_cell``: HOG cell size in pixels (:func:`gradcam_core.metrics.hog_similarity`)."""
    start = time.perf_counter()
    steps = tuple(cascade_steps(model.name) if steps is None else steps)
    chosen = list(records if n_images is None else records[:n_images])
    explainers = sanity_explainers(model, methods, ig_steps)
    timings: dict[str, float] = {}
    rows: list[dict] = []
    pairs = _UnrelatedPairs(rows)
    batches = ImageBatches(
        model,
        chosen,
        f"sanity {model.name}",
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
    )
    for images, indices in batches:
        infos = [
            {"model": model.name, "index": i, "image": chosen[i].name, "label": chosen[i].label}
            for i in indices
        ]
        _cascade_batch(model, explainers, methods, steps, images, infos, seed, hog_cell, timings, pairs, rows)
    pairs.close(timings)
    table = _ordered(pd.DataFrame(rows))
    return SanityRun(table, batches.skipped, time.perf_counter() - start, timings=timings)


_COLUMNS = (
    "model",
    "index",
    "image",
    "label",
    "predicted",
    "step_index",
    "step",
    "other_index",
    "method",
    *SIMILARITY_METRICS,
    "constant_map",
)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by image, step (the reference last) and method; the columns in :data:`_COLUMNS` order."""
    if not len(table):
        return table
    table = table[[c for c in _COLUMNS if c in table.columns]]
    order = table["step_index"].where(table["step_index"] > 0, np.inf)
    return (
        table.assign(_order=order)
        .sort_values(["index", "_order"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------
# Summaries and verdicts
# --------------------------------------------------------------------------------------------


def _informative(rows: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` of ``rows``, NaN where a map is constant (``constant_map``): a constant map has no
    ranking and no structure, so its row counts as missing for every metric."""
    if "constant_map" not in rows:
        return rows[metric]
    return rows[metric].where(~rows["constant_map"].astype(bool))


def cascade_summary(table: pd.DataFrame, confidence: float = CONFIDENCE, seed: int = 0) -> pd.DataFrame:
    """Mean similarity and its 95 % percentile bootstrap interval
    (:func:`gradcam_core.statistics.mean_with_interval`, seeded) per (model, step, method, metric) of a
    sanity table (:func:`run_cascading_randomisation` or :func:`run_data_randomisation`): columns ``model,
    step_index, step, method, metric, mean, low, high, n`` (values used) and ``missing`` (NaN values and
    rows with a constant map), steps in cascade order with the :data:`UNRELATED` reference last."""
    rows = []
    keys = ["model", "step_index", "step", "method"]
    for key, group in table.groupby(keys, sort=False):
        for metric in SIMILARITY_METRICS:
            values = _informative(group, metric).to_numpy(np.float64)
            mean, low, high = mean_with_interval(values, confidence, seed=seed)
            finite = int(np.isfinite(values).sum())
            rows.append(
                dict(zip(keys, key))
                | {"metric": metric, "mean": mean, "low": low, "high": high, "n": finite}
                | {"missing": int(len(values) - finite)}
            )
    summary = pd.DataFrame(rows)
    if not len(summary):
        return summary
    order = summary["step_index"].where(summary["step_index"] > 0, np.inf)
    return (
        summary.assign(_order=order)
        .sort_values(["model", "_order", "method"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def sanity_verdicts(
    table: pd.DataFrame, metrics_judged=VERDICT_METRICS, confidence: float = CONFIDENCE, seed: int = 0
) -> pd.DataFrame:
    """Per (model, method): does the map at the last step (the fully randomised model of the
    cascade, or the permuted-label model) fall to the level of two unrelated images?

    Rule: for each metric of ``metrics_judged`` (default Spearman of the absolute maps and SSIM),
    pair each image's similarity at the last step (original map vs randomised map of image ``i``)
    with its :data:`UNRELATED` reference (original maps of images ``i`` and ``i + 1``) and take the
    mean paired difference ``randomised - unrelated`` with its 95 % paired bootstrap interval
    (:func:`gradcam_core.statistics.paired_difference`, seeded; pairs with a NaN or a constant map
    dropped). The
    metric **passes** unless the whole interval lies above 0 -- that is, unless the randomised
    model's maps stay measurably more similar to the original ones than an unrelated image's map
    is. The method passes when every judged metric passes. Columns: ``model, method, step`` (the
    last step), and per metric ``<m>_randomised``, ``<m>_unrelated`` (means over the pairs),
    ``<m>_difference``, ``<m>_low``, ``<m>_high``, ``<m>_n`` (pairs) and ``<m>_passes``; then
    ``passes``. A metric without a complete pair has no verdict (None), nor then has the method."""
    rows = []
    for (model, method), group in table.groupby(["model", "method"], sort=False):
        reference = group[group["step"] == UNRELATED].set_index("index")
        steps = group[group["step"] != UNRELATED]
        last = steps[steps["step_index"] == steps["step_index"].max()].set_index("index")
        row = {"model": model, "method": method, "step": last["step"].iloc[0] if len(last) else None}
        verdicts = []
        for metric in metrics_judged:
            paired = (
                _informative(last, metric)
                .to_frame(metric)
                .join(_informative(reference, metric).rename("reference"), how="inner")
            )
            a, b = paired[metric].to_numpy(np.float64), paired["reference"].to_numpy(np.float64)
            complete = np.isfinite(a) & np.isfinite(b)
            if not complete.any():
                row |= {
                    f"{metric}_{k}": np.nan for k in ("randomised", "unrelated", "difference", "low", "high")
                }
                row |= {f"{metric}_n": 0, f"{metric}_passes": None}
                verdicts.append(None)
                continue
            difference = paired_difference(a, b, confidence=confidence, seed=seed)
            passes = difference.excludes_zero() != 1
            row |= {
                f"{metric}_randomised": float(a[complete].mean()),
                f"{metric}_unrelated": float(b[complete].mean()),
                f"{metric}_difference": difference.mean,
                f"{metric}_low": difference.low,
                f"{metric}_high": difference.high,
                f"{metric}_n": difference.n,
                f"{metric}_passes": passes,
            }
            verdicts.append(passes)
        row["passes"] = None if any(v is None for v in verdicts) else all(verdicts)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Figure data
# --------------------------------------------------------------------------------------------


@dataclass
class CascadeExample:
    """One image through the cascade, for a figure: ``image`` ([0, 1] pixels, ``(H, W, 3)`` or
    ``(H, W)``), the original model's predicted class and its name, the column titles ``steps``
    (``"original"``, then each cascade step), and per method ``maps`` -- the normalised absolute
    maps, ``(len(steps), H, W)`` on [0, 1] (what SSIM and HOG compare) -- and ``signed`` -- the
    signed maps scaled for display (:func:`gradcam_core.maps.for_display`)."""

    image: np.ndarray
    predicted: int
    class_name: str
    steps: list[str]
    maps: dict[str, np.ndarray]
    signed: dict[str, np.ndarray]


def cascade_example(
    model: LoadedModel,
    record,
    *,
    methods=SANITY_METHODS,
    ig_steps: int = IG_STEPS,
    steps: Sequence[CascadeStep] | None = None,
    seed: int = 0,
) -> CascadeExample:
    """The maps of one image (``record``, an ILSVRC record) for the original model's top-1 class,
    by the original model and after each cumulative step of the cascade (the same random weights
    as :func:`run_cascading_randomisation` with the same ``seed``)."""
    steps = tuple(cascade_steps(model.name) if steps is None else steps)
    image = data.load_rgb(record.path)
    x = model.preprocess([image])
    explainers = sanity_explainers(model, methods, ig_steps)
    with torch.no_grad():
        classes = model.module(x).argmax(1)
    per_step = [method_maps(explainers, x, classes, methods)]
    for layers in cumulative_layers(steps):
        with randomised_layers(model.module, layers, seed):
            per_step.append(method_maps(explainers, x, classes, methods))
    predicted = int(classes[0])
    pixels = np.asarray(model.spec.pixels(image).permute(1, 2, 0))
    return CascadeExample(
        pixels[..., 0] if pixels.shape[-1] == 1 else pixels,
        predicted,
        model.class_names[predicted],
        ["original", *(step.name for step in steps)],
        {m: np.stack([maps[m].normalised[0] for maps in per_step]) for m in methods},
        {
            m: for_display(torch.from_numpy(np.stack([maps[m].signed[0] for maps in per_step]))).numpy()
            for m in methods
        },
    )


# --------------------------------------------------------------------------------------------
# Data randomisation (MNIST, permuted labels)
# --------------------------------------------------------------------------------------------

#: The data-randomisation pair: the MNIST stand-in and the same network and training on permuted
#: training labels (:data:`gradcam_core.standins.DEFAULT_CONFIGS`).
TRUE_LABEL_MODEL = "mnist-cnn"
PERMUTED_LABEL_MODEL = "mnist-cnn-permuted-labels"


@dataclass
class DataRandomisationRun(SanityRun):
    """:func:`run_data_randomisation`'s per-image table (as :class:`SanityRun`'s, with one step,
    :data:`PERMUTED_LABELS`), the two models' ``accuracies`` (a table: model, split, labels,
    accuracy) and their training (``training``: model, checkpoint, seconds the training took
    when it ran, whether it ran now)."""

    accuracies: pd.DataFrame = field(default_factory=pd.DataFrame)
    training: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def training_seconds_this_run(self) -> float:
        """Training time spent by this run (0 when both checkpoints came from the cache)."""
        return (
            float((self.training["seconds"] * self.training["trained_now"]).sum())
            if len(self.training)
            else 0.0
        )


def cascade_grid(example: CascadeExample) -> MapExamples:
    """A :func:`cascade_example` laid out for :func:`gradcam_core.figures.plot_map_grid`: one row
    per method (the image, then its absolute map scaled to [0, 1] for the trained model and after
    each step), one column per step, as Adebayo et al.'s Fig. 2."""
    methods = list(example.maps)
    image = example.image if example.image.ndim == 3 else np.repeat(example.image[..., None], 3, axis=-1)
    return MapExamples(
        [image] * len(methods),
        {step: np.stack([example.maps[m][k] for m in methods]) for k, step in enumerate(example.steps)},
        methods,
    )


def _accuracy_rows(name, module, train_true, train_permuted, test) -> list[dict]:
    rows = [
        {
            "model": name,
            "split": "train",
            "labels": "true",
            "accuracy": training.accuracy(module, train_true),
        },
        {"model": name, "split": "test", "labels": "true", "accuracy": training.accuracy(module, test)},
    ]
    if train_permuted is not None:
        rows.insert(
            1,
            {
                "model": name,
                "split": "train",
                "labels": "permuted (trained on)",
                "accuracy": training.accuracy(module, train_permuted),
            },
        )
    return rows


def run_data_randomisation(
    *,
    methods=SANITY_METHODS,
    n_images: int | None = 100,
    ig_steps: int = IG_STEPS,
    batch_size: int = 100,
    hog_cell: int = MNIST_HOG_PIXELS_PER_CELL,
    seed: int = 0,
    device="auto",
    progress: bool = True,
    true_model: str = TRUE_LABEL_MODEL,
    permuted_model: str = PERMUTED_LABEL_MODEL,
) -> DataRandomisationRun:
    """Adebayo et al. 2018, Sec. 4, data randomisation test on MNIST: ``n_images`` test digits
    (drawn with ``seed``; never trained on by either model) explained by the stand-in trained on
    the true labels (``true_model``) and by the same network trained on permuted training labels
    (``permuted_model``, trained on first use, else loaded from the cache), both for the class the
    true-label model predicts. Rows: (digit, method) with the similarities of the two maps (step
    :data:`PERMUTED_LABELS`) plus the :data:`UNRELATED` reference (the true-label model's maps of
    digits ``i`` and ``i + 1``). Also the accuracies: the permuted-label model on the labels it
    was trained on (memorisation), on the true training labels and on the test digits (chance,
    about 10 %); the true-label model on its training and test digits."""
    start = time.perf_counter()
    trained_true, model_true = training.load_standin(true_model, device=device, progress=progress)
    trained_permuted, model_permuted = training.load_standin(permuted_model, device=device, progress=progress)
    train_true, test = training.training_data(trained_true.config)
    train_permuted, test_permuted = training.training_data(trained_permuted.config)
    if not (
        torch.equal(train_true.images, train_permuted.images)
        and torch.equal(test.images, test_permuted.images)
    ):
        raise ValueError(f"{true_model} and {permuted_model} do not train and test on the same digits")
    evaluation = test.sample(n_images, seed)
    explainers_true = sanity_explainers(model_true, methods, ig_steps)
    explainers_permuted = sanity_explainers(model_permuted, methods, ig_steps)
    timings: dict[str, float] = {}
    rows: list[dict] = []
    pairs = _UnrelatedPairs(rows)
    for first in range(0, len(evaluation), batch_size):
        images = to_model_input(evaluation.images[first : first + batch_size], model_true.device)
        with torch.no_grad():
            classes = model_true.module(images).argmax(1)
        true_maps = _prepared(
            method_maps(explainers_true, images, classes, methods, timings), hog_cell, timings
        )
        permuted_maps = _prepared(
            method_maps(explainers_permuted, images, classes, methods, timings), hog_cell, timings
        )
        labels = evaluation.labels[first : first + batch_size].tolist()
        for i, (label, predicted) in enumerate(zip(labels, classes.tolist())):
            info = {"model": true_model, "index": first + i, "label": label, "predicted": predicted}
            pairs.add(info, true_maps[i], timings)
            base = info | {"step_index": 1, "step": PERMUTED_LABELS, "other_index": first + i}
            rows.extend(_similarity_rows(base, true_maps[i], permuted_maps[i], timings))
    pairs.close(timings)
    accuracies = pd.DataFrame(
        _accuracy_rows(true_model, model_true.module, train_true, None, test)
        + _accuracy_rows(permuted_model, model_permuted.module, train_true, train_permuted, test)
    )
    trainings = pd.DataFrame(
        [
            {
                "model": t.config.name,
                "checkpoint": t.path.name,
                "seconds": t.seconds,
                "trained_now": t.trained_now,
            }
            for t in (trained_true, trained_permuted)
        ]
    )
    return DataRandomisationRun(
        _ordered(pd.DataFrame(rows)),
        [],
        time.perf_counter() - start,
        timings=timings,
        accuracies=accuracies,
        training=trainings,
    )
