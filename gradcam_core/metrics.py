"""Metrics: pure functions and tiny accumulators over plain arrays.

One IoU (:func:`box_iou`), one box extractor (:func:`threshold_box`, opencv, one map; its batched
twin on a GPU, :func:`threshold_boxes`, kornia, tested to give the same boxes), one pointing rule
(:func:`pointing_hit`), one bootstrap helper (:func:`bootstrap_ci`), two binarisations that say
how they differ (:func:`mask_at_fraction_of_max` for raw maps, :func:`mask_above_level` for maps
on a 0..1 scale). Boxes are ``x0, y0, x1, y1``
in continuous pixel coordinates (a pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``).
Image-space maps (the Backprop and c-MWP rows of Table 1) are boxed after grab-cut
(:func:`grabcut_box`), through the same :func:`largest_segment_box`.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import torch
from scipy import stats
from torchvision.ops import box_iou as _torch_box_iou


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of every pair, ``(len(a), len(b))`` (torchvision.ops.box_iou)."""
    a = torch.as_tensor(np.asarray(boxes_a, np.float64).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(boxes_b, np.float64).reshape(-1, 4))
    return _torch_box_iou(a, b).numpy()


def largest_segment_box(mask: np.ndarray) -> np.ndarray | None:
    """Bounding box of the largest 8-connected segment of a boolean mask (opencv connected
    components), or ``None`` for an empty mask."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count)
    sizes[0] = 0  # background
    largest = labels == int(np.argmax(sizes))  # (opencv's own stats are slower than this)
    rows = np.flatnonzero(largest.any(axis=1))
    cols = np.flatnonzero(largest.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def mask_at_fraction_of_max(heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """The map's "activated" pixels: value >= ``threshold`` x the map's own maximum (the
    binarisation of paper Sec. 4.1, on raw maps of any scale). A map without a positive value
    activates nothing. Compare :func:`mask_above_level`, for maps already on a 0..1 scale."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    peak = float(np.max(heatmap))
    if not (np.isfinite(peak) and np.isfinite(np.min(heatmap))):  # NaN propagates to both; -inf to min
        raise ValueError("heatmap contains NaN or inf")
    if peak <= 0:
        return np.zeros(np.shape(heatmap), bool)
    return np.asarray(heatmap) >= threshold * peak


def threshold_box(heatmap: np.ndarray, threshold: float) -> np.ndarray | None:
    """Paper Sec. 4.1: binarise the map at ``threshold`` x its maximum and box the largest
    connected segment. A map with no positive value has no box (``None``)."""
    return largest_segment_box(mask_at_fraction_of_max(heatmap, threshold))


def largest_segment_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`largest_segment_box` for a batch of boolean masks ``(B, H, W)`` on any device (a GPU:
    no copy to the host, one labelling for the whole batch), by kornia's exact block union-find
    labelling (``kornia.contrib.connected_components_union_find``, Allegretti et al. 2020).
    Returns boxes ``(B, 4)`` float32 (``x0, y0, x1, y1``) and ``found`` ``(B,)`` (False for an
    empty mask, whose box row is meaningless).

    The same boxes as opencv's: both label 8-connected segments, and both number them in the
    raster order of their first 2 x 2 block (opencv's default, block-based algorithm; kornia's
    label is the segment's smallest block index), so a tie in size goes to the same segment --
    checked equal on the embedded images (``tests/test_metrics.py``)."""
    from kornia.contrib import connected_components_union_find

    if masks.ndim != 3 or masks.dtype != torch.bool:
        raise ValueError(f"masks must be a boolean (B, H, W) tensor, got {masks.dtype} {tuple(masks.shape)}")
    count, height, width = masks.shape
    if masks.numel() == 0:
        return masks.new_zeros((count, 4), dtype=torch.float32), masks.new_zeros(count, dtype=torch.bool)
    labels = connected_components_union_find(masks[:, None])[:, 0].flatten(1)  # (B, H*W), 0: background
    label_count = count * ((height + 1) // 2) * ((width + 1) // 2) + 1
    sizes = torch.bincount(labels.flatten(), minlength=label_count)
    sizes[0] = 0
    # the largest segment of each mask; among equally large ones, the smallest label (opencv's first)
    preference = sizes[labels] * label_count - labels
    best = labels.gather(1, preference.argmax(dim=1, keepdim=True))  # (B, 1); 0 for an empty mask
    largest = (labels == best).view(count, height, width) & masks
    rows, cols = largest.any(dim=2), largest.any(dim=1)
    y0, x0 = rows.int().argmax(dim=1), cols.int().argmax(dim=1)
    y1 = height - rows.flip(1).int().argmax(dim=1)
    x1 = width - cols.flip(1).int().argmax(dim=1)
    return torch.stack([x0, y0, x1, y1], dim=1).float(), best[:, 0] > 0


def threshold_boxes(
    heatmaps: torch.Tensor, threshold: float, sizes=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`threshold_box` for a batch of maps ``(B, H, W)`` on any device: each binarised at
    ``threshold`` x its own maximum (paper Sec. 4.1, compared in the maps' dtype as numpy
    compares them) and its largest segment boxed (:func:`largest_segment_boxes`). ``sizes``
    ``(B, 2)`` (width, height), optional: maps of several image sizes zero-padded to a common
    ``H x W`` at the bottom and right, each maximum and mask taken within its own size (padding
    is never activated). Returns ``(boxes (B, 4), found (B,))``; a map with no positive value has
    no box (``found`` False)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    count, height, width = heatmaps.shape
    inside = torch.ones_like(heatmaps, dtype=torch.bool)
    if sizes is not None:
        sizes = torch.as_tensor(sizes, device=heatmaps.device)
        xs = torch.arange(width, device=heatmaps.device)
        ys = torch.arange(height, device=heatmaps.device)
        inside = (xs[None, None, :] < sizes[:, 0, None, None]) & (ys[None, :, None] < sizes[:, 1, None, None])
    lowest = torch.finfo(heatmaps.dtype).min
    peaks = heatmaps.masked_fill(~inside, lowest).flatten(1).amax(dim=1)
    if not torch.isfinite(heatmaps).all():
        raise ValueError("heatmap contains NaN or inf")
    # numpy compares the float32 map with the Python float threshold x peak rounded to float32
    levels = (peaks.double() * threshold).to(heatmaps.dtype)
    masks = (heatmaps >= levels[:, None, None]) & inside & (peaks > 0)[:, None, None]
    return largest_segment_boxes(masks)


#: Grab-cut seeds (Simonyan et al. 2014, Sec. 3.2): the foreground colour model is estimated from
#: the pixels whose saliency reaches this quantile of the map's values ...
GRABCUT_FOREGROUND_QUANTILE = 0.95

#: ... and the background colour model from the pixels at or below this quantile.
GRABCUT_BACKGROUND_QUANTILE = 0.30


def grabcut_box(
    image: np.ndarray,
    heatmap: np.ndarray,
    foreground_quantile: float = GRABCUT_FOREGROUND_QUANTILE,
    background_quantile: float = GRABCUT_BACKGROUND_QUANTILE,
    iterations: int = 5,
) -> np.ndarray | None:
    """Box of an image-space saliency map after grab-cut segmentation (Simonyan et al. 2014,
    "Deep inside convolutional networks", Sec. 3.2; the Backprop and c-MWP rows of the Grad-CAM
    paper's Table 1 box their maps this way, Grad-CAM Sec. 4.1). The protocol constants
    (:data:`GRABCUT_FOREGROUND_QUANTILE`, :data:`GRABCUT_BACKGROUND_QUANTILE`) are Simonyan's.

    ``image`` is an ``(H, W, 3)`` uint8 RGB array, ``heatmap`` an ``(H, W)`` map. Seeds: pixels
    whose saliency is ``>=`` the ``foreground_quantile`` of the map's values are sure foreground
    (``cv2.GC_FGD``), pixels ``<=`` the ``background_quantile`` sure background (``cv2.GC_BGD``)
    and the rest *probable background* (``cv2.GC_PR_BGD``): Simonyan leaves them to the
    segmentation, and here they join the foreground only where the colour models and the
    smoothness term pull them there. Where the two quantiles tie (over 65 % of the pixels share
    one value, say the zeros of a rectified map) only the pixels strictly above it are sure
    foreground and only those strictly below it sure background, the tied ones probable
    background; if the tie is at the map's maximum, the tied pixels are the sure foreground.
    ``cv2.grabCut`` (``GC_INIT_WITH_MASK``) then runs ``iterations`` times; the foreground is
    ``GC_FGD`` or ``GC_PR_FGD``, and the box is that of its largest 8-connected segment
    (:func:`largest_segment_box`).

    OpenCV's k-means initialisation of the colour models draws from OpenCV's own random
    generator, so this reseeds it (``cv2.setRNGSeed(0)``) before every call: the same inputs give
    the same box, and OpenCV's global generator is left reseeded. The image is converted to BGR,
    opencv's channel order (grab-cut's colour models and edge weights do not depend on it).

    Degenerate maps: a constant map, or one with no positive value, has no box (``None``). If
    ``cv2.grabCut`` raises (it asserts that both colour models have samples), the box of the
    sure-foreground seed mask is returned instead. Raises ``ValueError`` for an image that is not
    ``(H, W, 3)`` uint8, a map of another size than the image, a map with NaN or inf, or
    quantiles outside ``0 <= background < foreground <= 1``.
    """
    image = np.asarray(image)
    heatmap = np.asarray(heatmap, np.float64)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 array, got shape {image.shape}, dtype {image.dtype}"
        )
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape} does not match image shape {image.shape}")
    if not 0 <= background_quantile < foreground_quantile <= 1:
        raise ValueError(
            f"need 0 <= background_quantile < foreground_quantile <= 1, "
            f"got {background_quantile} and {foreground_quantile}"
        )
    low, high = float(np.min(heatmap)), float(np.max(heatmap))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("heatmap contains NaN or inf")
    if high <= 0 or low == high:
        return None
    foreground_level, background_level = np.quantile(heatmap, [foreground_quantile, background_quantile])
    if foreground_level > background_level:
        sure_foreground = heatmap >= foreground_level
        sure_background = heatmap <= background_level
    elif foreground_level < high:  # tied quantiles: the tied pixels are left undecided
        sure_foreground = heatmap > foreground_level
        sure_background = heatmap < background_level
    else:  # tied at the maximum: the tied pixels are the only foreground seed
        sure_foreground = heatmap >= foreground_level
        sure_background = ~sure_foreground
    mask = np.full(heatmap.shape, cv2.GC_PR_BGD, np.uint8)
    mask[sure_background] = cv2.GC_BGD
    mask[sure_foreground] = cv2.GC_FGD
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(
            bgr,
            mask,
            None,
            np.zeros((1, 65), np.float64),
            np.zeros((1, 65), np.float64),
            int(iterations),
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error:
        return largest_segment_box(sure_foreground)
    return largest_segment_box((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))


def localization_correct(pred_class: int, pred_box, label: int, gt_boxes, iou_threshold: float = 0.5) -> bool:
    """ILSVRC rule: right class and IoU >= ``iou_threshold`` with some ground-truth box."""
    return bool(localization_hits([pred_class], [pred_box], label, gt_boxes, iou_threshold)[0])


def localization_hits(
    pred_classes, pred_boxes, label: int, gt_boxes, iou_threshold: float = 0.5
) -> np.ndarray:
    """:func:`localization_correct` for many (class, box) pairs of one image at once, with one
    IoU call; a missing box (``None``) is never right."""
    pred_classes = np.asarray(pred_classes)
    if len(gt_boxes) == 0 or len(pred_classes) == 0:
        return np.zeros(len(pred_classes), bool)
    boxes = np.array([b if b is not None else (np.nan,) * 4 for b in pred_boxes], np.float64)
    overlap = box_iou(boxes, gt_boxes)
    return (pred_classes == label) & (np.nan_to_num(overlap, nan=0.0) >= iou_threshold).any(axis=1)


def point_box_distance(point_xy, boxes, pixel_scale=(1.0, 1.0)) -> np.ndarray:
    """Euclidean distance from a point to each box (0 inside), with the x and y offsets
    multiplied by ``pixel_scale`` (e.g. original pixels per stored pixel, to measure in the
    original image's pixels)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x, y = point_xy
    dx = np.maximum(np.maximum(boxes[:, 0] - x, 0), x - boxes[:, 2])
    dy = np.maximum(np.maximum(boxes[:, 1] - y, 0), y - boxes[:, 3])
    return np.hypot(pixel_scale[0] * np.maximum(dx, 0), pixel_scale[1] * np.maximum(dy, 0))


def map_peak(heatmap: np.ndarray) -> tuple[float, float]:
    """The centre ``(x, y)`` of the map's maximum pixel (the first one in row-major order)."""
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return col + 0.5, row + 0.5


#: The pointing game's tolerance in pixels (Zhang et al. 2016; paper Sec. 4.3).
POINTING_TOLERANCE = 15.0

#: The seed's threshold for a chest X-ray map's "activated" pixels: 85 % of its maximum.
SEED_RATIO_THRESHOLD = 0.85


#: Zhang et al. 2016's "difficult" pointing-game images: the cued class's boxes cover less than
#: this share of the image (they also require a distractor class, which ILSVRC's one-label
#: images do not have).
DIFFICULT_COVERAGE = 0.25


def pointing_hit(
    heatmap: np.ndarray, boxes, tolerance: float = POINTING_TOLERANCE, pixel_scale=(1.0, 1.0)
) -> bool:
    """Pointing game (Zhang et al. 2016, as used in paper Sec. 4.3): a hit when the map's
    maximum lies within ``tolerance`` pixels of any ground-truth box of the cued class. The
    tolerance is in the original image's pixels (Zhang et al.; TorchRay's ``PointingGame``):
    ``pixel_scale`` converts the map's pixels to those (original per stored pixel, x and y)."""
    if len(boxes) == 0:
        raise ValueError("pointing_hit needs at least one ground-truth box")
    return bool((point_box_distance(map_peak(heatmap), boxes, pixel_scale) <= tolerance).any())


def box_coverage(shape: tuple[int, int], boxes) -> float:
    """The share of an ``(H, W)`` image's pixels inside the union of ``boxes`` (pixel centres;
    :func:`box_mask`): Zhang et al.'s criterion for a "difficult" pointing-game image."""
    return float(box_mask(shape, boxes).mean())


def class_accuracies(hits, classes) -> np.ndarray:
    """Accuracy per class (in ascending class order) of boolean ``hits`` labelled by ``classes``:
    the pointing game's mean class accuracy (Zhang et al. 2016) is their mean."""
    hits = np.asarray(hits, np.float64)
    classes = np.asarray(classes)
    if hits.shape != classes.shape or hits.size == 0:
        raise ValueError(
            f"need equally long, non-empty hits and classes; got {hits.shape} and {classes.shape}"
        )
    labels, index = np.unique(classes, return_inverse=True)
    return np.bincount(index, weights=hits, minlength=len(labels)) / np.bincount(index, minlength=len(labels))


def bootstrap_ci(
    values, statistic=np.mean, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values``
    (scipy.stats.bootstrap, fixed seed)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2 or np.all(values == values[0]):
        value = float(statistic(values)) if len(values) else float("nan")
        return value, value
    result = stats.bootstrap(
        (values,),
        statistic,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=False,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def rank_correlation(map_a, map_b) -> float:
    """Spearman rank correlation between two maps of the same shape (scipy.stats.spearmanr on
    the flattened values; ties get average ranks). Paper Sec. 5.3 compares explanation maps with
    occlusion maps this way. A constant map has no ranking: NaN."""
    pair = _varying_pair(map_a, map_b, "maps differ in size")
    return float(stats.spearmanr(*pair).statistic) if pair else float("nan")


def _varying_pair(values_a, values_b, mismatch: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Two equally long flat float64 vectors, or None when either is constant (nothing varies to
    correlate); ``mismatch`` starts the error for vectors of different sizes."""
    a = np.asarray(values_a, np.float64).ravel()
    b = np.asarray(values_b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"{mismatch}: {np.shape(values_a)} vs {np.shape(values_b)}")
    if np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return a, b


# --------------------------------------------------------------------------------------------
# Task 5: maps against radiologist boxes
# --------------------------------------------------------------------------------------------


def box_mask(shape: tuple[int, int], boxes) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the pixels whose centres lie inside any of ``boxes``."""
    height, width = shape
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ys = np.arange(height)[:, None] + 0.5
    xs = np.arange(width)[None, :] + 0.5
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        mask |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return mask


def ratio_inside_box(heatmap: np.ndarray, boxes, threshold: float = SEED_RATIO_THRESHOLD) -> float:
    """The seed's chest X-ray metric: of the activated pixels (>= ``threshold`` x max), the
    fraction whose centres lie inside the radiologist's box(es). NaN when nothing is activated
    (a map with no positive value)."""
    mask = mask_at_fraction_of_max(heatmap, threshold)
    count = int(mask.sum())
    if count == 0:
        return float("nan")
    return float((mask & box_mask(mask.shape, boxes)).sum() / count)


# --------------------------------------------------------------------------------------------
# Task 7: fidelity and contrastivity (Pope et al., CVPR 2019, Sec. 4.3)
# --------------------------------------------------------------------------------------------


def mask_above_level(saliency: torch.Tensor | np.ndarray, threshold: float):
    """Binarised saliency (Pope et al. 2019): features whose saliency, on a 0..1 scale (maps
    normalised first), is strictly greater than the absolute level ``threshold``. Compare
    :func:`mask_at_fraction_of_max`, relative to each raw map's maximum."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return saliency > threshold


def fidelity(correct_before, correct_after) -> float:
    """Pope et al. 2019: the drop in accuracy when the salient features are occluded,
    ``accuracy(original) - accuracy(occluded)`` over the same inputs (boolean arrays)."""
    before = np.asarray(correct_before, bool)
    after = np.asarray(correct_after, bool)
    if before.shape != after.shape or before.size == 0:
        raise ValueError(f"need two equally long, non-empty arrays; got {before.shape} and {after.shape}")
    return float(before.mean() - after.mean())


def contrastivity(mask_a, mask_b) -> np.ndarray:
    """Pope et al. 2019: Hamming distance between the binarised maps of two classes for the same
    input, divided by the number of features salient in either, ``d_H(a, b) / |a OR b|``; per
    input over the last two dimensions. NaN where neither map has a salient feature."""
    a = np.asarray(mask_a, bool)
    b = np.asarray(mask_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    distance = (a ^ b).sum(axis=(-2, -1)).astype(np.float64)
    union = (a | b).sum(axis=(-2, -1)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, distance / np.maximum(union, 1), np.nan)


def per_class_auc(labels, scores, class_names) -> pd.DataFrame:
    """ROC AUC per class of a multi-label classifier (scikit-learn's ``roc_auc_score``), with
    the positives and negatives counted; NaN where a class has no positive or no negative."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    rows = []
    for k, name in enumerate(class_names):
        positives = int(labels[:, k].sum())
        negatives = int(len(labels) - positives)
        auc = roc_auc_score(labels[:, k], scores[:, k]) if positives and negatives else float("nan")
        rows.append({"finding": name, "positives": positives, "negatives": negatives, "auc": float(auc)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Task 4: agreement between raters
# --------------------------------------------------------------------------------------------


def inter_rater_agreement(ratings, scale) -> float:
    """Krippendorff's alpha (ordinal) of a raters x items table of ratings on ``scale`` (NaN
    where a rater did not rate an item; the ``krippendorff`` package). NaN when fewer than two
    raters share an item."""
    import krippendorff

    matrix = np.asarray(ratings, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or (np.isfinite(matrix).sum(axis=0) >= 2).sum() == 0:
        return float("nan")
    return float(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal", value_domain=list(scale))
    )


# --------------------------------------------------------------------------------------------
# Sanity checks: similarity of two maps (Adebayo et al., NeurIPS 2018, Sec. 3)
# --------------------------------------------------------------------------------------------

#: HOG settings of :func:`hog_similarity` (scikit-image's ``hog``): unsigned orientations in 9 bins,
#: blocks of 2 x 2 cells, L2-Hys block normalisation (Dalal & Triggs 2005, scikit-image's default).
HOG_ORIENTATIONS = 9
HOG_CELLS_PER_BLOCK = (2, 2)

#: Cell size in pixels for 224 px ImageNet maps: 14 x 14 cells (:func:`hog_similarity`'s default).
HOG_PIXELS_PER_CELL = 16


def _same_shape_maps(map_a, map_b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(map_a, np.float64)
    b = np.asarray(map_b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"need two (H, W) maps of the same shape; got {np.shape(map_a)} and {np.shape(map_b)}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("maps contain NaN or inf values")
    return a, b


def spearman_abs(map_a, map_b) -> float:
    """Spearman rank correlation of the absolute values of two maps (Adebayo et al. 2018, Sec. 3,
    "rank correlation with absolute values"): :func:`rank_correlation` of ``|a|`` and ``|b|``. A
    map whose absolute values are all equal has no ranking: NaN."""
    return rank_correlation(np.abs(np.asarray(map_a, np.float64)), np.abs(np.asarray(map_b, np.float64)))


def spearman_signed(map_a, map_b) -> float:
    """Spearman rank correlation of two maps with their signs (Adebayo et al. 2018, Sec. 3, "rank
    correlation without absolute values"): :func:`rank_correlation` of the maps as they are. For a
    non-negative map (Grad-CAM) it equals :func:`spearman_abs`."""
    return rank_correlation(map_a, map_b)


def ssim_similarity(map_a, map_b) -> float:
    """Structural similarity (SSIM; Wang et al. 2004) of two ``(H, W)`` maps on a 0..1 scale
    (Adebayo et al. 2018, Sec. 3: SSIM of the normalised absolute maps). scikit-image's
    ``structural_similarity`` with ``data_range=1`` -- the maps must already be on [0, 1]
    (normalise them first with :func:`gradcam_core.maps.normalize_maps`, the report's one
    normaliser; other values are refused rather than rescaled here) -- and Wang et al.'s settings:
    an 11-tap Gaussian window of sigma 1.5 (``gaussian_weights=True``) and population covariances
    (``use_sample_covariance=False``). Identical maps give 1 (constant ones included)."""
    from skimage.metrics import structural_similarity

    a, b = _same_shape_maps(map_a, map_b)
    if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) > 1:
        raise ValueError("SSIM compares maps on a 0..1 scale; normalise them first (maps.normalize_maps)")
    return float(
        structural_similarity(
            a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def hog_features(heatmap, pixels_per_cell: int = HOG_PIXELS_PER_CELL) -> np.ndarray:
    """The histogram-of-oriented-gradients feature vector of one ``(H, W)`` map (scikit-image's
    ``hog`` with :data:`HOG_ORIENTATIONS` unsigned orientation bins, square cells of
    ``pixels_per_cell`` pixels, :data:`HOG_CELLS_PER_BLOCK` cells per block, L2-Hys block
    normalisation). Unsigned orientations: a map and its inverse (``1 - map``) have the same
    features."""
    from skimage.feature import hog

    return hog(
        np.asarray(heatmap, np.float64),
        orientations=HOG_ORIENTATIONS,
        pixels_per_cell=(pixels_per_cell, pixels_per_cell),
        cells_per_block=HOG_CELLS_PER_BLOCK,
        block_norm="L2-Hys",
        feature_vector=True,
    )


def pearson_correlation(values_a, values_b) -> float:
    """Pearson correlation of two equally long vectors (``scipy.stats.pearsonr``); NaN when either
    is constant (no variation to correlate)."""
    pair = _varying_pair(values_a, values_b, "vectors differ in length")
    return float(stats.pearsonr(*pair).statistic) if pair else float("nan")


def hog_similarity(map_a, map_b, pixels_per_cell: int = HOG_PIXELS_PER_CELL) -> float:
    """Pearson correlation of the HOG feature vectors of two ``(H, W)`` maps (Adebayo et al. 2018,
    Sec. 3, "Pearson correlation of the histogram of gradients (HOGs) derived from two maps";
    :func:`hog_features` then :func:`pearson_correlation`). Cells of ``pixels_per_cell`` pixels:
    16 for 224 px maps (14 x 14 cells), 4 for 28 px MNIST maps (7 x 7). A map without any gradient
    (constant) has all-zero features: NaN."""
    a, b = _same_shape_maps(map_a, map_b)
    return pearson_correlation(hog_features(a, pixels_per_cell), hog_features(b, pixels_per_cell))


#: The radial frequency (cycles per pixel; Nyquist is 0.5) above which :func:`high_frequency_energy`
#: counts a map's energy: half the Nyquist frequency, where a stride-2 checkerboard (0.5) and
#: pixel noise sit and an object's outline does not.
HIGH_FREQUENCY_CUTOFF = 0.25


def high_frequency_energy(image, cutoff: float = HIGH_FREQUENCY_CUTOFF) -> float:
    """The texture of a map or a stimulus picture: the share of its spectral energy (the squared
    magnitude of the 2-D DFT, ``numpy.fft.fft2``, after the mean is removed) at radial frequencies
    above ``cutoff`` cycles per pixel. An RGB picture is averaged over its channels first. 1.0 for
    a one-pixel checkerboard, near 0 for a smooth blob; 0.0 for a constant picture (no energy)."""
    values = np.asarray(image, np.float64)
    if values.ndim == 3:
        values = values.mean(axis=-1)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D map or an H x W x C picture, got shape {np.shape(image)}")
    power = np.abs(np.fft.fft2(values - values.mean())) ** 2
    total = power.sum()
    if total <= 0:
        return 0.0
    fy, fx = np.meshgrid(np.fft.fftfreq(values.shape[0]), np.fft.fftfreq(values.shape[1]), indexing="ij")
    return float(power[np.hypot(fy, fx) > cutoff].sum() / total)
