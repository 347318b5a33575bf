"""Task 5 (the seed's, after the paper's claim that Grad-CAM localises what a classifier looks
at): on chest X-rays with radiologist boxes, how much of each method's map for the boxed finding
falls inside the box."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import data, metrics
from ..maps import for_display, resize_to_image
from ..models import LoadedModel
from .common import ImageBatches, TaskRun, with_model_column

#: Images per batch by default (four methods, two of them 32 passes each, per image).
BATCH_SIZE = 8


@dataclass
class XrayImages:
    """The X-rays of a run: those with radiologist boxes (evaluated) and the reference images
    GradientSHAP draws its background from (those without boxes, or the boxed ones when none)."""

    boxed: list
    reference: list


@dataclass
class XrayExamples:
    """Figure data: the first (image, finding) pairs' images, titles, radiologist boxes, and
    each method's maps at image size, scaled for display (:func:`~gradcam_core.maps.for_display`:
    signed maps keep their sign)."""

    images: list[np.ndarray] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    maps: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class ChestXrayRun(TaskRun):
    """Task 5's per-pair table (one row per (image, finding), method and threshold:
    ``ratio_inside``, ``iou``, ``pointing_hit``, ``box_fraction``, the finding's
    ``probability``) and the figure data."""

    examples: XrayExamples = field(default_factory=XrayExamples)

    def describe(self) -> str:
        """One line: the (image, finding) pairs evaluated and the unreadable images skipped."""
        pairs = self.table[["image", "finding"]].drop_duplicates().shape[0]
        skipped = f": {', '.join(self.skipped)}" if self.skipped else ""
        return f"{pairs} (image, finding) pairs, {len(self.skipped)} unreadable images skipped{skipped}"


def load_xrays(data_source: str = "embedded", labels_csv=None, bbox_csv=None) -> XrayImages:
    """The embedded NIH subset (``"embedded"``) or a folder of NIH PNGs with its tables (only the
    images with boxes), split into boxed and reference images; prints what it holds."""
    if data_source == "embedded":
        records = data.load_nih_cxr()
    else:
        records = data.load_nih_cxr(
            image_dir=data_source, labels_csv=labels_csv, bbox_csv=bbox_csv, boxed_only=True
        )
    boxed = [r for r in records if r.boxes]
    reference = [r for r in records if not r.boxes] or boxed
    source = "embedded 621-image subset (256 px)" if data_source == "embedded" else data_source
    boxes = sum(len(b) for r in boxed for b in r.boxes.values())
    print(
        f"{len(records)} NIH ChestX-ray14 images from the {source}: {len(boxed)} with radiologist boxes "
        f"({boxes} boxes)"
    )
    return XrayImages(boxed, reference)


def xray_class_index(model: LoadedModel, finding: str) -> int | None:
    """The model's output index for an NIH finding name (``None`` if the model has none)."""
    return model.class_names.index(finding) if finding in model.class_names else None


def run_xray_localization(
    model: LoadedModel,
    records,
    explainers: dict,
    *,
    thresholds=(metrics.SEED_RATIO_THRESHOLD, 0.5, 0.15),
    n_examples=12,
    **loading,
) -> ChestXrayRun:
    """Task 5: for every (image, finding) with a radiologist box, each explainer's map of that
    finding's class, and per threshold: the fraction of activated pixels inside the box (the
    seed's metric, :func:`metrics.ratio_inside_box`), the IoU of the box around the activated
    region's largest segment with the radiologist box (Task 1's box extractor and IoU), the
    pointing game with no tolerance (map maximum inside the box) and the box's share of the image
    (what a map spread uniformly would score). ``explainers`` maps method names to explainers
    (:func:`~gradcam_core.tasks.common.create_explainers` makes Task 5's). The run keeps the
    first ``n_examples`` pairs' images and normalised maps for figures. ``loading``: how images
    are loaded (:class:`~gradcam_core.tasks.common.ImageBatches`; batches of :data:`BATCH_SIZE`
    unless ``batch_size`` is given)."""
    pairs, missing = [], []
    for record in records:
        for finding, boxes in record.boxes.items():
            index = xray_class_index(model, finding)
            (pairs if index is not None else missing).append((record, finding, index, boxes))
    if missing:
        raise ValueError(f"{model.name} has no output for finding(s) {sorted({p[1] for p in missing})}")
    start = time.perf_counter()
    rows, examples = [], XrayExamples(maps={m: [] for m in explainers})
    pair_records = [p[0] for p in pairs]
    batches = ImageBatches(
        model, pair_records, f"Task 5 {model.name}", **{"batch_size": BATCH_SIZE, **loading}
    )
    for images, indices in batches:
        classes = torch.tensor([pairs[i][2] for i in indices], device=images.device)
        with torch.no_grad():
            probability = torch.sigmoid(model(images).gather(1, classes[:, None]))[:, 0].cpu().numpy()
        per_method = {m: explainer.attribute(images, classes).detach() for m, explainer in explainers.items()}
        for row_in_batch, index in enumerate(indices):
            record, finding, class_index, boxes = pairs[index]
            base = {
                "image": record.name,
                "finding": finding,
                "class_index": class_index,
                "probability": float(probability[row_in_batch]),
                "box_fraction": float(metrics.box_mask((record.size[1], record.size[0]), boxes).mean()),
            }
            keep = len(examples.images) < n_examples
            for method, maps in per_method.items():
                heat = resize_to_image(maps[row_in_batch], record.size)[0]
                hit = metrics.pointing_hit(heat, boxes, tolerance=0.0)
                for threshold in thresholds:
                    box = metrics.threshold_box(heat, threshold)
                    iou = float(metrics.box_iou(box, boxes).max()) if box is not None else 0.0
                    rows.append(
                        {
                            **base,
                            "method": method,
                            "threshold": threshold,
                            "ratio_inside": metrics.ratio_inside_box(heat, boxes, threshold),
                            "iou": iou,
                            "pointing_hit": hit,
                        }
                    )
                if keep:
                    examples.maps[method].append(for_display(torch.from_numpy(heat)).numpy())
            if keep:
                examples.images.append(np.asarray(data.load_rgb(record.path)))
                examples.titles.append(f"{finding} ({record.name})")
                examples.boxes.append(boxes)
    table = with_model_column(rows, model)
    return ChestXrayRun(table, batches.skipped, time.perf_counter() - start, examples)
