"""Deletion and insertion, the "causal metrics" of Petsiuk et al. (RISE, BMVC 2018, Sec. 4.1,
https://arxiv.org/abs/1806.07421): how fast the probability of the explained class falls when the
pixels a map ranks first are removed (deletion; lower area under the curve is better), and how fast
it rises when they are inserted into a blurred copy of the image (insertion; higher is better).

- **Order.** Pixels go in order of decreasing saliency (:func:`perturbation_order`; ties in
  row-major order, so the order is deterministic). Maps are ordered by their raw value: for signed
  maps (Integrated Gradients) the most positive evidence goes first and the evidence against the
  class last. Two reference orders go through the same code as saliency maps: a seeded random
  order (:func:`random_saliency`) and centre-first (:func:`centre_saliency`).
- **Deletion** starts from the image and sets pixels (all channels) to 0 in the model's input
  space (:data:`NEUTRAL`): the ImageNet mean colour for the mean/std-normalised models
  (SqueezeNet), mid-grey for the TF models that scale pixels to [-1, 1] (MobileNet v1), as RISE's
  ``torch.zeros_like`` substrate on the normalised tensor. **Insertion** starts from a blurred
  copy (:func:`rise_blur`: a Gaussian blur of sigma 5 px in an 11 x 11 kernel, RISE's ``klen=11,
  ksig=5``, here by torchvision's ``gaussian_blur`` with reflect padding where RISE pads with 0)
  and copies the image's pixels in.
- **Curve.** The softmax probability of the explained class (the model's top-1 prediction on the
  image) at a schedule of ``fractions`` of the pixels. Petsiuk et al. step by 224 pixels (224
  steps on a 224 x 224 input, :data:`PETSIUK_FRACTIONS`); the default here, :data:`FRACTIONS`,
  has 9 points dense at the start where deletion curves fall fastest, as the CPU affords a few
  thousand forwards per model (its measured error against Petsiuk et al.'s schedule is stated
  at :data:`FRACTIONS`). The endpoints are the same for every order of an image (deletion: the
  image at 0, the all-neutral input at 1; insertion: the blurred image at 0, the image at 1) and
  are computed once per image.
- **AUC.** The trapezoid rule over the fraction axis, so every AUC lies in [0, 1] (RISE's
  ``auc``: the mean of the trapezoids of equal steps).

Everything is batched: the perturbed inputs of many (image, order, step) items are built and
scored in forwards of ``batch_size`` inputs (:func:`causal_curves`); nothing loops per step.
"""

from __future__ import annotations

import numbers
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from .. import methods as explainers
from ..maps import upsample
from ..models import LoadedModel, to_model_input
from ..statistics import CONFIDENCE, format_interval, mean_with_interval, paired_difference
from .common import ImageBatches, TaskRun, with_model_column

#: The default schedule of fractions of the pixels perturbed, dense at the start where deletion
#: curves fall fastest: 7 perturbed inputs per curve beside the shared endpoints 0 and 1.
#: Measured once against Petsiuk et al.'s schedule (:data:`PETSIUK_FRACTIONS`) on 5 embedded
#: ILSVRC images (val records 100-104) x 2 embedded models x the 8 orders of the chapter (6
#: methods, random, centre-first), 80 curves of each kind: the AUC changes by 0.004 on average
#: for deletion (at most 0.032) and 0.015 for insertion (at most 0.075). The coarse trapezoids
#: overestimate deletion (+0.003 on average) and underestimate insertion (-0.009), most of it
#: from the insertion curve's late rise between 0.5 and 1: a method's mean AUC per model moves by
#: at most 0.009 (deletion) and 0.033 (insertion: Integrated Gradients, 0.033 on SqueezeNet and
#: 0.016 on MobileNet; the other orders at most 0.012). (0, .02, .05, .1, .2, .35, .5, .7, .85, 1)
#: costs one more step per curve and cuts the insertion figures by about 40 % (interpolated from
#: the same curves).
FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
#: Petsiuk et al.'s schedule on a 224 x 224 input: steps of 224 pixels, 225 points (32 times
#: the forwards of :data:`FRACTIONS`).
PETSIUK_FRACTIONS = tuple(np.arange(225) / 224)
#: The pixel value that deletion writes, in the model's input space (see the module docstring).
NEUTRAL = 0.0
#: RISE's blur for the insertion canvas: an 11 x 11 Gaussian kernel of sigma 5 pixels.
BLUR_KERNEL = 11
BLUR_SIGMA = 5.0
#: The chapter's methods and the reference orders (as saliency maps, :func:`reference_saliency`).
DEFAULT_METHODS = (
    "grad-cam",
    "grad-cam++",
    "backprop",
    "guided-backprop",
    "guided-grad-cam",
    "integrated-gradients",
)
REFERENCES = ("random", "centre")
#: Method settings used unless ``method_settings`` says otherwise (per method name).
DEFAULT_SETTINGS = {"integrated-gradients": {"n_steps": 8}}
#: The columns that identify a row of the per-image table (one per image and order).
KEY_COLUMNS = ["model", "image", "method"]
#: The two curves.
CURVES = ("deletion", "insertion")
#: The method the summary's paired differences are taken against.
BASELINE_METHOD = "grad-cam"


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


def perturbation_order(saliency: torch.Tensor) -> torch.Tensor:
    """The pixels of ``(..., H, W)`` maps as flat indices ``(..., H * W)`` in the order the causal
    metrics perturb them (Petsiuk et al. 2018, Sec. 4.1): decreasing saliency, equal values in
    row-major order (a stable sort, so the order is deterministic). Raw values are ordered as they
    are: for a signed map the most positive pixel goes first. NaN is refused."""
    if torch.isnan(saliency).any():
        raise ValueError("saliency maps contain NaN; cannot order their pixels")
    return torch.argsort(saliency.flatten(-2), dim=-1, descending=True, stable=True)


def pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Each pixel's position in :func:`perturbation_order`, ``(..., H, W)`` int32 (0 = perturbed
    first): the first ``k`` pixels perturbed are where ``ranks < k``."""
    order = perturbation_order(saliency)
    ranks = torch.empty_like(order, dtype=torch.int32)
    positions = torch.arange(order.shape[-1], dtype=torch.int32, device=order.device)
    ranks.scatter_(-1, order, positions.expand_as(order).contiguous())
    return ranks.view(saliency.shape)


def random_saliency(count: int, size: tuple[int, int], seed: int = 0, first: int = 0) -> torch.Tensor:
    """Random-order reference maps ``(count, H, W)`` for ``size = (H, W)``: image ``first + i`` of
    a run gets a permutation of ``0 .. H*W - 1`` drawn from ``numpy.random.default_rng((seed,
    first + i))`` (no ties), so its order does not depend on how the run is batched."""
    height, width = size
    maps = [
        np.random.default_rng((seed, first + i)).permutation(height * width).reshape(height, width)
        for i in range(count)
    ]
    return torch.as_tensor(np.stack(maps) if maps else np.zeros((0, height, width)), dtype=torch.float32)


def centre_saliency(size: tuple[int, int]) -> torch.Tensor:
    """The centre-first reference map ``(H, W)``: minus the distance of each pixel centre from the
    image centre, so pixels go nearest the centre first (equal distances in row-major order)."""
    height, width = size
    y = torch.arange(height, dtype=torch.float64) - (height - 1) / 2
    x = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
    return -(y[:, None] ** 2 + x[None, :] ** 2).sqrt()


def reference_saliency(name: str, count: int, size: tuple[int, int], seed: int = 0, first: int = 0):
    """The reference maps ``(count, H, W)`` called ``name``: "random" (:func:`random_saliency`)
    or "centre" (:func:`centre_saliency`, the same for every image)."""
    if name == "random":
        return random_saliency(count, size, seed, first)
    if name == "centre":
        return centre_saliency(size).float().expand(count, *size)
    raise ValueError(f"unknown reference order {name!r}; known: {', '.join(REFERENCES)}")


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------


def rise_blur(images: torch.Tensor) -> torch.Tensor:
    """The insertion canvas of RISE: a Gaussian blur of ``images`` (sigma :data:`BLUR_SIGMA` px,
    :data:`BLUR_KERNEL` px kernel) by torchvision's ``gaussian_blur`` (reflect padding), in the
    model's input space (the normalisation is affine per channel, so blurring before or after it
    is the same)."""
    return gaussian_blur(images, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])


def check_fractions(fractions) -> np.ndarray:
    """``fractions`` as a float array, refused unless strictly increasing from 0 to 1."""
    values = np.asarray(fractions, np.float64)
    if values.ndim != 1 or values.size < 2 or values[0] != 0 or values[-1] != 1:
        raise ValueError(f"fractions must run from 0 to 1 (at least 2 values); got {fractions!r}")
    if not np.all(np.diff(values) > 0):
        raise ValueError(f"fractions must increase strictly; got {fractions!r}")
    return values


def pixel_counts(fractions, n_pixels: int) -> np.ndarray:
    """How many of ``n_pixels`` are perturbed at each fraction (rounded to the nearest pixel)."""
    return np.rint(check_fractions(fractions) * n_pixels).astype(np.int64)


def auc(curve, fractions) -> np.ndarray:
    """The area under curves ``(..., S)`` over the fraction axis ``(S,)`` by the trapezoid rule:
    in [0, 1] for probabilities over fractions from 0 to 1 (Petsiuk et al. 2018, Sec. 4.1)."""
    return np.trapezoid(np.asarray(curve, np.float64), np.asarray(fractions, np.float64), axis=-1)


@dataclass
class CausalCurves:
    """Deletion and insertion curves of ``N`` images under ``M`` orders, at ``S`` fractions:
    ``deletion`` and ``insertion`` ``(N, M, S)`` probabilities of each image's explained
    ``classes`` at the nominal ``fractions``; ``x`` the fractions of pixels actually perturbed
    (whole pixels), the axis of :attr:`deletion_auc` and :attr:`insertion_auc` ``(N, M)``.
    ``seconds`` and ``forwards`` ``(M,)``: each order's share of the forward time and its
    forwards; ``shared_seconds`` and ``shared_forwards``: the endpoints'.
    ``neutral_probabilities``: the softmax of the all-neutral input (the same for every image of
    a model, passed on to the next call)."""

    fractions: np.ndarray
    x: np.ndarray
    classes: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    seconds: np.ndarray
    forwards: np.ndarray
    shared_seconds: float = 0.0
    shared_forwards: int = 0
    neutral_probabilities: torch.Tensor | None = None

    @property
    def deletion_auc(self) -> np.ndarray:
        return auc(self.deletion, self.x)

    @property
    def insertion_auc(self) -> np.ndarray:
        return auc(self.insertion, self.x)


def causal_curves(
    module: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    saliency: torch.Tensor,
    classes: torch.Tensor | None = None,
    fractions=FRACTIONS,
    *,
    batch_size: int = 64,
    canvas: Callable[[torch.Tensor], torch.Tensor] = rise_blur,
    image_probabilities: torch.Tensor | None = None,
    neutral_probabilities: torch.Tensor | None = None,
) -> CausalCurves:
    """Deletion and insertion curves (Petsiuk et al. 2018, Sec. 4.1) of ``images`` ``(N, C, H,
    W)`` (the model's input) under ``M`` orders given as ``saliency`` maps ``(N, M, H, W)``, for
    ``classes`` ``(N,)`` (default: each image's top-1 prediction).

    Deletion replaces the first pixels of an order by :data:`NEUTRAL`; insertion copies them from
    the image into ``canvas(images)`` (default :func:`rise_blur`). The endpoints, the same for
    every order of an image, take one forward each: the image (deletion at 0, insertion at 1;
    skipped when its softmax ``image_probabilities`` ``(N, classes)`` is given), the canvas
    (insertion at 0) and one all-neutral input for all images (deletion at 1; skipped when its
    softmax ``neutral_probabilities`` ``(classes,)`` is given, as a run passes it on from
    :attr:`CausalCurves.neutral_probabilities`). Every other point is one perturbed input. The
    canvases, the neutral input and the perturbed inputs are built ``batch_size`` at a time and
    scored in one forward each under ``torch.no_grad()``."""
    values = check_fractions(fractions)
    n, m = saliency.shape[:2]
    height, width = images.shape[-2:]
    if saliency.dim() != 4 or tuple(saliency.shape[-2:]) != (height, width) or n != images.shape[0] or m < 1:
        raise ValueError(
            f"saliency {tuple(saliency.shape)} must be (N, M, H, W), M >= 1, for images {tuple(images.shape)}"
        )
    device = images.device
    n_pixels = height * width
    counts = torch.as_tensor(pixel_counts(values, n_pixels), device=device)
    ranks = pixel_ranks(saliency.to(device))  # (N, M, H, W)
    base = canvas(images)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.softmax(module(to_model_input(x, device)).float(), dim=1)

    shared_seconds, shared_forwards = 0.0, 0
    if image_probabilities is None:
        start = time.perf_counter()
        image_probabilities = torch.cat(
            [forward(images[i : i + batch_size]) for i in range(0, n, batch_size)]
        )
        shared_seconds, shared_forwards = time.perf_counter() - start, n
    if classes is None:
        classes = image_probabilities.argmax(1)
    classes = torch.as_tensor(classes, device=device).long()
    p_image = image_probabilities.to(device)[torch.arange(n, device=device), classes]

    # the points to score, as (image, order, curve (0 deletion, 1 insertion), step): first the
    # shared ones -- each image's canvas (insertion of 0 pixels), the neutral input (deletion of
    # all pixels) unless given --, then every interior point of every order
    last = len(values) - 1
    shared = [[i, 0, 1, 0] for i in range(n)] + ([[0, 0, 0, last]] if neutral_probabilities is None else [])
    steps = np.arange(1, last)
    interior = np.stack(np.meshgrid(np.arange(n), np.arange(m), [0, 1], steps, indexing="ij"), -1)
    grid = torch.as_tensor(np.concatenate([np.array(shared).reshape(-1, 4), interior.reshape(-1, 4)]))
    grid = grid.to(device)
    scores = torch.empty(len(grid), device=device)
    seconds = np.zeros(m)
    for first in range(0, len(grid), batch_size):
        tick = time.perf_counter()
        image, order, curve, step = grid[first : first + batch_size].unbind(1)
        source = images[image]
        removed = (ranks[image, order] < counts[step][:, None, None])[:, None]
        deleting = (curve == 0)[:, None, None, None]
        start_from = torch.where(deleting, source, base[image])
        put_in = torch.where(deleting, torch.full_like(source, NEUTRAL), source)
        probabilities = forward(torch.where(removed, put_in, start_from))
        scores[first : first + len(image)] = probabilities[
            torch.arange(len(image), device=device), classes[image]
        ]
        if neutral_probabilities is None and first <= len(shared) - 1 < first + len(image):
            neutral_probabilities = probabilities[len(shared) - 1 - first].clone()
        elapsed = (time.perf_counter() - tick) / len(image)
        is_shared = torch.arange(first, first + len(image)) < len(shared)
        shared_seconds += elapsed * int(is_shared.sum())
        seconds += elapsed * np.bincount(order[~is_shared.to(device)].cpu().numpy(), minlength=m)
    shared_forwards += len(shared)
    p_canvas = scores[:n]
    p_neutral = neutral_probabilities.to(device)[classes]
    inner = scores[len(shared) :].view(n, m, 2, len(steps)).cpu().numpy().astype(np.float64)
    ends = [
        t.cpu().numpy().astype(np.float64)[:, None, None].repeat(m, 1) for t in (p_image, p_canvas, p_neutral)
    ]
    return CausalCurves(
        values,
        counts.cpu().numpy() / n_pixels,
        classes.cpu().numpy(),
        np.concatenate([ends[0], inner[:, :, 0], ends[2]], axis=-1),
        np.concatenate([ends[1], inner[:, :, 1], ends[0]], axis=-1),
        seconds,
        np.full(m, n * 2 * len(steps)),
        shared_seconds,
        shared_forwards,
        neutral_probabilities.detach(),
    )


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


def curve_column(curve: str, fraction: float) -> str:
    """The table's column of ``curve`` ("deletion", "insertion") at ``fraction``, e.g.
    ``deletion_0.02``."""
    return f"{curve}_{float(fraction):.6g}"


_CURVE_COLUMN = re.compile(r"^(deletion|insertion)_([0-9.e+-]+)$")


def curve_columns(table: pd.DataFrame, curve: str) -> list[tuple[float, str]]:
    """``(fraction, column)`` of ``curve``'s values in a table of :func:`run_deletion_insertion`,
    by increasing fraction."""
    found = []
    for column in table.columns:
        match = _CURVE_COLUMN.match(str(column))
        if match and match.group(1) == curve:
            found.append((float(match.group(2)), column))
    return sorted(found)


@dataclass
class DeletionRun(TaskRun):
    """The deletion/insertion table: one row per image and order (``method``: a method's name, or
    "random" / "centre" with ``reference`` true) with ``label``, the explained ``class`` (the
    model's top-1 prediction), ``correct``, ``deletion_auc``, ``insertion_auc`` and the curves'
    values in columns ``deletion_<fraction>`` and ``insertion_<fraction>``
    (:func:`curve_columns`). ``timings``: per method (and "endpoints", the forwards shared by all
    orders) the seconds spent computing maps and scoring curves and the curve forwards;
    ``fractions``: the schedule."""

    timings: pd.DataFrame = field(default_factory=pd.DataFrame)
    fractions: tuple = FRACTIONS


def _saliency_at_input(maps: torch.Tensor, size) -> torch.Tensor:
    """``(N, K, h, w)`` maps of the first class as ``(N, H, W)`` at the input size."""
    maps = maps.detach()[:, :1]
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = upsample(maps.float(), size)
    return maps[:, 0]


def run_deletion_insertion(
    model: LoadedModel,
    records,
    *,
    methods=DEFAULT_METHODS,
    n_images: int | None = None,
    fractions=FRACTIONS,
    references=REFERENCES,
    method_settings: dict | None = None,
    method_images: dict | None = None,
    batch_size: int = 64,
    image_batch: int = 8,
    progress: bool = True,
    seed: int = 0,
) -> DeletionRun:
    """Deletion and insertion (Petsiuk et al. 2018, Sec. 4.1) on the first ``n_images`` of
    ``records`` (all when None): for each image, the model's top-1 class, a map per method of
    ``methods`` (any names of :data:`gradcam_core.methods.METHODS`, with ``method_settings``
    ``{name: {setting: value}}`` over :data:`DEFAULT_SETTINGS`) and the reference orders of
    ``references`` (:func:`reference_saliency`, random ones seeded by ``seed``), and both curves
    at ``fractions`` for each map (:func:`causal_curves`). Images are explained ``image_batch`` at
    a time; perturbed inputs are scored ``batch_size`` per forward. ``method_images``
    ``{name: count}`` limits a costly method (Score-CAM: one forward pass per channel) to the
    first ``count`` images of the run. Unreadable images are skipped
    (:attr:`~gradcam_core.tasks.common.TaskRun.skipped`). Returns a :class:`DeletionRun`."""
    if n_images is not None and (not isinstance(n_images, numbers.Integral) or n_images < 1):
        raise ValueError(f"n_images must be a positive integer or None, got {n_images!r}")
    values = check_fractions(fractions)
    methods, references = list(methods), list(references)
    unknown = [r for r in references if r not in REFERENCES]
    if unknown:
        raise ValueError(f"unknown reference order(s) {unknown}; known: {', '.join(REFERENCES)}")
    clash = sorted(set(methods) & set(references))
    if clash or len(set(methods)) < len(methods):
        raise ValueError(f"method names must be unique and not reference names; got {methods} {references}")
    settings = DEFAULT_SETTINGS | dict(method_settings or {})
    created = {name: explainers.create(name, model, **settings.get(name, {})) for name in methods}
    limits = dict(method_images or {})
    unknown = sorted(set(limits) - set(methods))
    if unknown:
        raise ValueError(f"method_images names method(s) {unknown} that are not among methods {methods}")
    if not methods and not references:
        raise ValueError("nothing to evaluate: no methods and no reference orders")
    orders = [name for name in methods if name not in limits] + references
    limited = [name for name in methods if name in limits]
    start = time.perf_counter()
    chosen = list(records if n_images is None else records[:n_images])
    every = orders + limited  # the timings' rows
    map_seconds, curve_seconds = np.zeros(len(every)), np.zeros(len(every))
    forwards = np.zeros(len(every), np.int64)
    shared_seconds, shared_forwards = 0.0, 0
    rows, neutral = [], None
    batches = ImageBatches(model, chosen, f"Deletion {model.name}", batch_size=image_batch, progress=progress)
    seen = 0
    for images, indices in batches:
        size = tuple(images.shape[-2:])
        tick = time.perf_counter()
        with torch.no_grad():
            probabilities = F.softmax(model.module(images).float(), dim=1)
        classes = probabilities.argmax(1)
        shared_seconds += time.perf_counter() - tick
        shared_forwards += len(indices)
        maps = []
        for j, name in enumerate(orders):
            tick = time.perf_counter()
            if name in created:
                maps.append(_saliency_at_input(created[name].attribute(images, classes), size))
            else:
                maps.append(reference_saliency(name, len(indices), size, seed, seen).to(images.device))
            map_seconds[j] += time.perf_counter() - tick
        parts = [(orders, len(indices), torch.stack(maps, 1))] if orders else []
        for name in limited:  # a costly method on the images of the batch within its limit
            count = min(len(indices), max(0, limits[name] - seen))
            if count:
                tick = time.perf_counter()
                part = _saliency_at_input(created[name].attribute(images[:count], classes[:count]), size)
                map_seconds[every.index(name)] += time.perf_counter() - tick
                parts.append(([name], count, part[:, None]))
        for names, count, stacked in parts:
            curves = causal_curves(
                model.module,
                images[:count],
                stacked,
                classes[:count],
                values,
                batch_size=batch_size,
                image_probabilities=probabilities[:count],
                neutral_probabilities=neutral,
            )
            neutral = curves.neutral_probabilities  # scored once per run
            where = [every.index(name) for name in names]
            curve_seconds[where] += curves.seconds
            forwards[where] += curves.forwards
            shared_seconds += curves.shared_seconds
            shared_forwards += curves.shared_forwards
            deletion_auc, insertion_auc = curves.deletion_auc, curves.insertion_auc
            for i, index in enumerate(indices[:count]):
                record = chosen[index]
                for j, name in enumerate(names):
                    row = {
                        "image": record.name,
                        "label": record.label,
                        "class": int(curves.classes[i]),
                        "correct": bool(curves.classes[i] == record.label),
                        "method": name,
                        "reference": name in references,
                        "deletion_auc": float(deletion_auc[i, j]),
                        "insertion_auc": float(insertion_auc[i, j]),
                    }
                    for curve, values_of in (("deletion", curves.deletion), ("insertion", curves.insertion)):
                        row |= {curve_column(curve, f): float(v) for f, v in zip(values, values_of[i, j])}
                    rows.append(row)
        seen += len(indices)
    timings = pd.DataFrame(
        {
            "model": model.name,
            "method": every + ["endpoints"],
            "map_seconds": [*map_seconds, 0.0],
            "curve_seconds": [*curve_seconds, shared_seconds],
            "curve_forwards": [*forwards, shared_forwards],
        }
    )
    return DeletionRun(
        with_model_column(rows, model),
        batches.skipped,
        time.perf_counter() - start,
        timings=timings,
        fractions=tuple(float(f) for f in values),
    )


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def deletion_summary(
    table: pd.DataFrame, baseline: str = BASELINE_METHOD, confidence: float = CONFIDENCE, seed: int = 0
) -> pd.DataFrame:
    """Per model and method of a :func:`run_deletion_insertion` table: the number of images, the
    mean deletion and insertion AUC with their 95 % percentile bootstrap intervals over images
    (``deletion_auc``, ``deletion_low``, ``deletion_high``, ...; seeded), and the paired
    difference of each AUC from ``baseline``'s on the same images
    (:func:`gradcam_core.statistics.paired_difference`: ``deletion_diff``, ``deletion_diff_low``,
    ...; NaN where the model has no ``baseline`` rows). ``deletion`` and ``insertion`` hold the
    AUC and interval as the report prints them (:func:`~gradcam_core.statistics.format_interval`).
    Lower deletion and higher insertion AUCs are better (Petsiuk et al. 2018, Sec. 4.1)."""
    rows = []
    for model, of_model in table.groupby("model", sort=False):
        per_image = {
            curve: of_model.pivot_table(
                index="image", columns="method", values=f"{curve}_auc", aggfunc="first"
            )
            for curve in CURVES
        }
        for method in of_model["method"].drop_duplicates():
            row = {"model": model, "method": method, "n_images": int((of_model["method"] == method).sum())}
            for curve in CURVES:
                wide = per_image[curve]
                mean, low, high = mean_with_interval(wide[method], confidence, seed=seed)
                row |= {f"{curve}_auc": mean, f"{curve}_low": low, f"{curve}_high": high}
                row[curve] = format_interval(mean, low, high)
                diff = (np.nan,) * 3
                if baseline in wide and method != baseline:
                    diff = paired_difference(wide[method], wide[baseline], confidence, seed=seed)[:3]
                elif method == baseline:
                    diff = (0.0, 0.0, 0.0)
                row |= dict(zip((f"{curve}_diff", f"{curve}_diff_low", f"{curve}_diff_high"), diff))
            rows.append(row)
    return pd.DataFrame(rows)


def mean_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The mean curves of a :func:`run_deletion_insertion` table, long: one row per model,
    method, ``curve`` and ``fraction`` with the ``probability`` averaged over images and the
    number of images ``n``."""
    parts = []
    for curve in CURVES:
        columns = curve_columns(table, curve)
        means = table.groupby(["model", "method"], sort=False)[[c for _, c in columns]].mean()
        long = means.rename(columns={c: f for f, c in columns}).stack().rename("probability").reset_index()
        long = long.rename(columns={long.columns[2]: "fraction"})
        long.insert(2, "curve", curve)
        counts = table.groupby(["model", "method"], sort=False).size().rename("n").reset_index()
        parts.append(long.merge(counts, on=["model", "method"]))
    return pd.concat(parts, ignore_index=True)
