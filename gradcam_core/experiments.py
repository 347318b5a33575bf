"""Runs of the report's tasks over a dataset: batched through a DataLoader, with a progress bar,
skipping and counting unreadable images, and returning per-image tables (pandas) that the
notebooks summarise with :mod:`gradcam_core.report`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import data, metrics
from .methods import CAM, GradCAM, Saliency
from .models import LoadedModel, to_model_input

#: Localisation methods of Task 1; "full-image" and "centre-box" are trivial baselines.
LOCALIZATION_METHODS = ("grad-cam", "cam", "backprop", "full-image", "centre-box")


@dataclass
class Run:
    """A task's per-image table, the images it could not read, and its wall time."""

    table: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


#: Optional mixed precision of the forward and backward passes (``torch.autocast``).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str = "fp32"):
    """``torch.autocast`` for ``precision`` ("bf16", "fp16") on ``device``; a no-op for "fp32".
    Maps come out in the low precision and are compared in float32 (tested to stay within the
    tolerance stated in ``tests/test_experiments.py`` of the fp32 maps)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if PRECISIONS[precision] is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def batches(model: LoadedModel, records, batch_size: int, num_workers: int = 0, desc: str = "", progress: bool = True):
    """Yield ``(images on the model's device, record indices)``; unreadable images are skipped
    and their paths collected in the returned list (filled as the iteration goes)."""
    skipped: list[str] = []
    loader = DataLoader(data.ImageDataset(records, model.spec.transform), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=data.collate_skipping,
                        pin_memory=model.device.type == "cuda")

    def generate():
        for images, indices, failed in tqdm(loader, desc=desc, disable=not progress, unit="batch", mininterval=5):
            skipped.extend(str(records[i].path) for i in failed)
            if images is not None:
                yield to_model_input(images, model.device), indices

    return generate(), skipped


def maps_at_image_size(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(K, h, w)`` maps bilinearly resized to an image's stored ``(width, height)``, in float32,
    or float64 for float64 maps (Grad-CAM++'s raw scale ``exp(S)`` can exceed float32's range)."""
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    if tuple(maps.shape[-2:]) != (size[1], size[0]):
        maps = F.interpolate(maps[None].to(dtype), size=(size[1], size[0]), mode="bilinear", align_corners=False)[0]
    return maps.to(dtype).cpu().numpy()


def _localization_hits(heat: np.ndarray, predicted, label: int, gt_boxes, thresholds, topk: int) -> np.ndarray:
    """Task 1 for one image and method: ``(thresholds, topk)`` hits of the boxes of its maps."""
    boxes = [metrics.threshold_box(heat[k], t) for t in thresholds for k in range(topk)]
    return metrics.localization_hits(np.tile(predicted, len(thresholds)), boxes, label, gt_boxes).reshape(
        len(thresholds), topk)


def centre_box(size: tuple[int, int], side: float) -> np.ndarray:
    """A box centred in the image covering ``side`` of its width and of its height."""
    w, h = size
    return np.array([w * (1 - side) / 2, h * (1 - side) / 2, w * (1 + side) / 2, h * (1 + side) / 2], np.float32)


def run_localization(model: LoadedModel, records, *, thresholds=(0.15,), topk: int = 5, batch_size: int = 64,
                     num_workers: int = 0, methods=LOCALIZATION_METHODS, backprop_images: int | None = None,
                     centre_box_side: float = 0.5, precision: str = "fp32", box_workers: int = 0,
                     progress: bool = True) -> Run:
    """Task 1 (paper Sec. 4.1, Table 1): for each image, the top-``topk`` classes, a map per class
    and method, a box per map and threshold, and whether classification and localisation are
    right at top-1 and top-``topk``. One row per image, method and threshold.

    ``backprop_images`` limits the gradient-saliency ("Backprop") baseline, whose ``topk``
    full backward passes per image cost ~10 forward passes, to the first images of the run.
    ``box_workers`` > 1 extracts boxes in that many threads (on a GPU the boxes, on the CPU,
    are the bottleneck); rows come out in the same order either way.
    """
    unknown = set(methods) - set(LOCALIZATION_METHODS)
    if unknown:
        raise ValueError(f"unknown localisation method(s) {sorted(unknown)}; known: {LOCALIZATION_METHODS}")
    start = time.perf_counter()
    gradcam = GradCAM(model)
    cam = CAM(model) if "cam" in methods and model.spec.cam_compatible else None
    saliency = Saliency(model) if "backprop" in methods else None
    pool = ThreadPoolExecutor(box_workers) if box_workers > 1 else None  # opencv releases the GIL
    rows = []
    iterator, skipped = batches(model, records, batch_size, num_workers, f"Task 1 {model.name}", progress)
    seen = 0
    for images, indices in iterator:
        with autocast(images.device, precision):
            forward = gradcam.forward(images)
            classes = forward.logits.detach().topk(topk, dim=1).indices
            per_method = {"grad-cam": gradcam.maps(images, forward, classes)} if "grad-cam" in methods else {}
            if cam is not None:
                per_method["cam"] = cam.maps(images, forward, classes)
        if saliency is not None:
            limit = len(indices) if backprop_images is None else max(0, min(len(indices), backprop_images - seen))
            if limit:  # maps for the first `limit` images of the batch only
                per_method["backprop"] = saliency.attribute(images[:limit], classes[:limit])
        classes = classes.cpu().numpy()
        hits_by_image = []  # per image: {method: (thresholds, topk) hits}, boxes from a thread pool if asked
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            jobs = {}
            for method, maps in per_method.items():
                if row_in_batch < len(maps):
                    work = (maps_at_image_size(maps[row_in_batch], record.size), classes[row_in_batch],
                            record.label, record.boxes, thresholds, topk)
                    jobs[method] = pool.submit(_localization_hits, *work) if pool else _localization_hits(*work)
            hits_by_image.append(jobs)
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            predicted = classes[row_in_batch]
            base = {"image": record.name, "label": record.label, "top5": " ".join(map(str, predicted)),
                    "cls_top1": bool(predicted[0] == record.label), "cls_topk": bool(record.label in predicted)}
            for method, job in hits_by_image[row_in_batch].items():
                hits = job.result() if pool else job
                for threshold, hit in zip(thresholds, hits):
                    rows.append({**base, "method": method, "threshold": threshold,
                                 "loc_top1": bool(hit[0]), "loc_topk": bool(hit.any())})
            for method, box in (("full-image", np.array([0, 0, *record.size], np.float32)),
                                ("centre-box", centre_box(record.size, centre_box_side))):
                if method in methods:
                    hit = metrics.localization_hits(predicted, [box] * topk, record.label, record.boxes)
                    rows.append({**base, "method": method, "threshold": np.nan, "loc_top1": bool(hit[0]),
                                 "loc_topk": bool(hit.any())})
        seen += len(indices)
    if pool:
        pool.shutdown()
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return Run(table, skipped, time.perf_counter() - start)


def run_pointing_game(model: LoadedModel, records, *, tolerance: float = 15.0, topk: int = 5, batch_size: int = 64,
                      num_workers: int = 0, precision: str = "fp32", progress: bool = True) -> Run:
    """Task 2 (paper Sec. 4.3): Grad-CAM maps for the ground-truth class and for the
    top-``topk`` predictions. One row per image and cued class: whether it is the ground truth,
    its rank among the predictions (0 = not predicted), the map's raw (unnormalised) maximum, and
    whether the maximum lies within ``tolerance`` px of a ground-truth box. The centre-point
    baseline is a row with ``method = "centre"``."""
    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows = []
    iterator, skipped = batches(model, records, batch_size, num_workers, f"Task 2 {model.name}", progress)
    for images, indices in iterator:
        with autocast(images.device, precision):
            forward = gradcam.forward(images)
            predicted = forward.logits.detach().topk(topk, dim=1).indices
            labels = torch.tensor([records[i].label for i in indices], device=images.device)
            cues = torch.cat([labels[:, None], predicted], dim=1)  # ground truth first, then top-k
            maps = gradcam.maps(images, forward, cues)
        predicted = predicted.cpu().numpy()
        for row_in_batch, index in enumerate(indices):
            record = records[index]
            heat = maps_at_image_size(maps[row_in_batch], record.size)
            for j, cls in enumerate(cues[row_in_batch].tolist()):
                if j > 0 and cls == record.label:
                    continue  # the ground-truth map was already computed as cue 0
                rank = int(np.flatnonzero(predicted[row_in_batch] == cls)[0]) + 1 if cls in predicted[row_in_batch] else 0
                rows.append({"image": record.name, "label": record.label, "method": "grad-cam", "cue": cls,
                             "is_gt": cls == record.label, "rank": rank, "raw_max": float(heat[j].max()),
                             "hit": metrics.pointing_hit(heat[j], record.boxes, tolerance)
                             if cls == record.label else False})
            w, h = record.size
            centre = np.zeros((h, w))
            centre[h // 2, w // 2] = 1.0
            rows.append({"image": record.name, "label": record.label, "method": "centre", "cue": record.label,
                         "is_gt": True, "rank": 0, "raw_max": np.nan,
                         "hit": metrics.pointing_hit(centre, record.boxes, tolerance)})
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return Run(table, skipped, time.perf_counter() - start)


def localization_examples(model: LoadedModel, records, threshold: float = 0.15, count: int = 5) -> dict:
    """For a figure: the first ``count`` images, their normalised top-1 Grad-CAM maps at image
    size, the ground-truth boxes and the box Task 1 extracts from each map."""
    from .methods import normalize_maps

    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    maps, classes, _ = GradCAM(model).attribute_top_k(model.preprocess(images), 1)
    heatmaps, boxes, titles = [], [], []
    for record, raw, cls in zip(chosen, maps, classes[:, 0].tolist()):
        heat = maps_at_image_size(raw, record.size)[0]
        box = metrics.threshold_box(heat, threshold)
        heatmaps.append(normalize_maps(torch.from_numpy(heat)).numpy())
        boxes.append(box)
        right = metrics.localization_correct(cls, box, record.label, record.boxes)
        titles.append(f"{model.class_names[cls]} ({'right' if right else 'wrong'})")
    return {"images": [np.asarray(im) for im in images], "heatmaps": heatmaps,
            "gt_boxes": [r.boxes for r in chosen], "pred_boxes": boxes, "titles": titles}


# --------------------------------------------------------------------------------------------
# Task 3: rank correlation with occlusion maps
# --------------------------------------------------------------------------------------------

CORRELATED_METHODS = ("grad-cam", "guided-backprop", "guided-grad-cam")


def pooled(maps: torch.Tensor, resolution: int) -> torch.Tensor:
    """Maps ``(N, K, H, W)`` average-pooled to ``resolution x resolution``: the common
    resolution at which Task 3 ranks pixels (fine enough for the occlusion stride, coarse enough
    that pixel noise in guided backpropagation does not dominate the ranks)."""
    return F.adaptive_avg_pool2d(maps.float(), resolution)


def run_occlusion_correlation(model: LoadedModel, records, *, patch_size: int = 45, stride: int = 15,
                              fill: float = 0.0, rank_resolution: int = 56, batch_size: int = 8,
                              occlusion_batch: int = 64, num_workers: int = 0, progress: bool = True) -> Run:
    """Task 3 (paper Sec. 5.3): for the ground-truth class, the occlusion map and the Grad-CAM,
    Guided Backpropagation and Guided Grad-CAM maps, and the Spearman rank correlation of each
    with the occlusion map at ``rank_resolution``. One row per image and method."""
    from .methods import GuidedBackprop, GuidedGradCAM, Occlusion

    start = time.perf_counter()
    explainers = {"grad-cam": GradCAM(model), "guided-backprop": GuidedBackprop(model),
                  "guided-grad-cam": GuidedGradCAM(model)}
    occlusion = Occlusion(model, patch_size=patch_size, stride=stride, fill=fill, batch_size=occlusion_batch)
    rows = []
    iterator, skipped = batches(model, records, batch_size, num_workers, f"Task 3 {model.name}", progress)
    for images, indices in iterator:
        labels = torch.tensor([records[i].label for i in indices], device=images.device)
        reference = pooled(occlusion.attribute(images, labels), rank_resolution).cpu().numpy()
        for method, explainer in explainers.items():
            maps = pooled(explainer.attribute(images, labels), rank_resolution).cpu().numpy()
            for row, index in enumerate(indices):
                rows.append({"model": model.name, "image": records[index].name, "label": records[index].label,
                             "method": method, "spearman": metrics.rank_correlation(maps[row, 0], reference[row, 0])})
    return Run(pd.DataFrame(rows), skipped, time.perf_counter() - start)


def occlusion_examples(model: LoadedModel, records, *, patch_size: int = 45, stride: int = 15, fill: float = 0.0,
                       count: int = 4) -> dict:
    """For a figure: images and their normalised occlusion, Grad-CAM, Guided Backprop and
    Guided Grad-CAM maps for the ground-truth class."""
    from .methods import GuidedBackprop, GuidedGradCAM, Occlusion, normalize_maps

    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    x = model.preprocess(images)
    labels = torch.tensor([r.label for r in chosen], device=x.device)
    maps = {"occlusion": Occlusion(model, patch_size=patch_size, stride=stride, fill=fill).attribute(x, labels),
            "grad-cam": GradCAM(model).attribute(x, labels),
            "guided-backprop": GuidedBackprop(model).attribute(x, labels),
            "guided-grad-cam": GuidedGradCAM(model).attribute(x, labels)}
    return {"images": [np.asarray(model.spec.pixels(im).permute(1, 2, 0)) for im in images],
            "maps": {k: normalize_maps(v[:, 0]).cpu().numpy() for k, v in maps.items()},
            "titles": [model.class_names[r.label] for r in chosen]}


# --------------------------------------------------------------------------------------------
# Task 6: sensitivity under one-pixel attacks and FGSM
# --------------------------------------------------------------------------------------------


def correctly_classified(model: LoadedModel, records, count: int, batch_size: int = 64,
                         least_confident: bool = False) -> list:
    """``count`` records that ``model`` classifies right (attacks start from those): the first
    ones in order, or with ``least_confident`` the ones with the smallest softmax margin between
    the true class and the runner-up (the easiest to flip, so a small attack budget finds some
    successes; a biased sample, named as such where it is used)."""
    chosen, margins = [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
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


def _normalised_gradcam(gradcam: GradCAM, model: LoadedModel, pixels: torch.Tensor, classes) -> np.ndarray:
    from .methods import normalize_maps

    return normalize_maps(gradcam.attribute(model.normalize(pixels), classes)).cpu().numpy()


def run_one_pixel_sensitivity(model: LoadedModel, records, *, population: int = 40, max_iterations: int = 10,
                              seed: int = 0, progress: bool = True) -> tuple[Run, dict]:
    """Task 6, one-pixel part: attack each (correctly classified) image; for every successful
    attack, the normalised Grad-CAM value of the original class at the attacked pixel before and
    after. Returns the per-image table and, for a figure, the first successful cases."""
    from .attacks import one_pixel_attack

    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows, examples = [], []
    for record in tqdm(records, desc=f"one-pixel {model.name}", disable=not progress, mininterval=5):
        pixels = model.pixels([data.load_rgb(record.path)])[0]
        result = one_pixel_attack(model, pixels, record.label, population=population,
                                  max_iterations=max_iterations, seed=seed)
        row = {"model": model.name, "image": record.name, "label": record.label, "success": result.success,
               "x": result.x, "y": result.y, "adversarial_class": result.adversarial_class,
               "evaluations": result.evaluations, "before": np.nan, "after": np.nan}
        if result.success:
            attacked = result.apply(pixels)
            maps = _normalised_gradcam(gradcam, model, torch.stack([pixels, attacked]), record.label)[:, 0]
            row["before"], row["after"] = float(maps[0, result.y, result.x]), float(maps[1, result.y, result.x])
            if len(examples) < 4:
                examples.append({"image": pixels.permute(1, 2, 0).cpu().numpy(), "before": maps[0], "after": maps[1],
                                 "xy": (result.x, result.y),
                                 "title": f"{model.class_names[record.label]} -> {model.class_names[result.adversarial_class]}"})
        rows.append(row)
    return Run(pd.DataFrame(rows), [], time.perf_counter() - start), {"cases": examples}


def run_fgsm(model: LoadedModel, records, epsilons, *, tolerance: float = 15.0, batch_size: int = 16,
             progress: bool = True) -> Run:
    """Task 6, FGSM part: for each epsilon and (correctly classified) image, whether the attack
    changes the top-1 class; the rank correlation between the clean and the attacked Grad-CAM
    map, for the true class and for the class predicted after the attack; and whether the true
    class's map on the attacked image still points into a ground-truth box."""
    from .attacks import fgsm

    start = time.perf_counter()
    gradcam = GradCAM(model)
    rows = []
    for first in tqdm(range(0, len(records), batch_size), desc=f"FGSM {model.name}", disable=not progress, mininterval=5):
        chunk = records[first:first + batch_size]
        pixels = model.pixels([data.load_rgb(r.path) for r in chunk])
        labels = torch.tensor([r.label for r in chunk], device=pixels.device)
        for epsilon in epsilons:
            attacked = fgsm(model, pixels, labels, epsilon)
            with torch.no_grad():
                adversarial = model(model.normalize(attacked)).argmax(1)
            classes = torch.stack([labels, adversarial], dim=1)
            clean = _normalised_gradcam(gradcam, model, pixels, classes)
            after = _normalised_gradcam(gradcam, model, attacked, classes)
            for i, record in enumerate(chunk):
                heat = maps_at_image_size(torch.from_numpy(after[i, :1]), record.size)[0]
                success = int(adversarial[i]) != record.label
                rows.append({"model": model.name, "image": record.name, "epsilon": epsilon, "success": success,
                             "rank_corr_true": metrics.rank_correlation(clean[i, 0], after[i, 0]),
                             "rank_corr_adversarial": metrics.rank_correlation(clean[i, 1], after[i, 1])
                             if success else np.nan,
                             "pointing_hit_true": metrics.pointing_hit(heat, record.boxes, tolerance)})
    return Run(pd.DataFrame(rows), [], time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# Task 5: chest X-ray maps against radiologist boxes
# --------------------------------------------------------------------------------------------

#: Task 5's methods, in the seed's order.
XRAY_METHODS = ("grad-cam", "grad-cam++", "integrated-gradients", "gradient-shap")


def make_explainer(method: str, model: LoadedModel, *, background: torch.Tensor | None = None,
                   ig_steps: int = 32, shap_samples: int = 32, seed: int = 0):
    """One explainer of Tasks 5 and 7 by name, with the tasks' settings. SHAP is captum's
    GradientShap (expected gradients over ``background``): batched over images and seeded, where
    shap's GradientExplainer computes the same estimator one image at a time."""
    from .methods import GradCAMPlusPlus, GradientShap, IntegratedGradients

    if method == "grad-cam":
        return GradCAM(model)
    if method == "grad-cam++":
        return GradCAMPlusPlus(model)
    if method == "integrated-gradients":
        return IntegratedGradients(model, n_steps=ig_steps)
    if method in ("gradient-shap", "shap"):
        if background is None:
            raise ValueError(f"{method} needs a background batch of reference inputs")
        return GradientShap(model, background, n_samples=shap_samples, seed=seed)
    raise ValueError(f"unknown method {method!r} for Tasks 5/7; known: grad-cam, grad-cam++, "
                     "integrated-gradients, gradient-shap (alias shap)")


def xray_class_index(model: LoadedModel, finding: str) -> int | None:
    """The model's output index for an NIH finding name (``None`` if the model has none)."""
    return model.class_names.index(finding) if finding in model.class_names else None


def run_xray_localization(model: LoadedModel, records, *, methods=XRAY_METHODS, thresholds=(0.85, 0.5, 0.15),
                          background: torch.Tensor | None = None, ig_steps: int = 32, shap_samples: int = 32,
                          batch_size: int = 8, n_examples: int = 12, seed: int = 0, num_workers: int = 0,
                          progress: bool = True) -> tuple[Run, dict]:
    """Task 5: for every (image, finding) with a radiologist box, each method's map of that
    finding's class, and per threshold: the fraction of activated pixels inside the box (the
    seed's metric, :func:`metrics.ratio_inside_box`), the IoU of the box around the activated
    region's largest segment with the radiologist box (Task 1's box extractor and IoU), the
    pointing game with no tolerance (map maximum inside the box) and the box's share of the image
    (what a map spread uniformly would score). Returns the run and the first ``n_examples``
    images with their normalised maps for figures."""
    from .methods import normalize_maps

    explainers = {m: make_explainer(m, model, background=background, ig_steps=ig_steps,
                                    shap_samples=shap_samples, seed=seed) for m in methods}
    pairs, missing = [], []
    for record in records:
        for finding, boxes in record.boxes.items():
            index = xray_class_index(model, finding)
            (pairs if index is not None else missing).append((record, finding, index, boxes))
    if missing:
        raise ValueError(f"{model.name} has no output for finding(s) {sorted({p[1] for p in missing})}")
    start = time.perf_counter()
    rows, examples = [], {"images": [], "titles": [], "boxes": [], "maps": {m: [] for m in methods}}
    iterator, skipped = batches(model, [p[0] for p in pairs], batch_size, num_workers, f"Task 5 {model.name}", progress)
    for images, indices in iterator:
        classes = torch.tensor([pairs[i][2] for i in indices], device=images.device)
        with torch.no_grad():
            probability = torch.sigmoid(model(images).gather(1, classes[:, None]))[:, 0].cpu().numpy()
        per_method = {m: explainer.attribute(images, classes).detach() for m, explainer in explainers.items()}
        for row_in_batch, index in enumerate(indices):
            record, finding, class_index, boxes = pairs[index]
            base = {"image": record.name, "finding": finding, "class_index": class_index,
                    "probability": float(probability[row_in_batch]),
                    "box_fraction": float(metrics.box_mask((record.size[1], record.size[0]), boxes).mean())}
            keep = len(examples["images"]) < n_examples
            for method, maps in per_method.items():
                heat = maps_at_image_size(maps[row_in_batch], record.size)[0]
                hit = metrics.pointing_hit(heat, boxes, tolerance=0.0)
                for threshold in thresholds:
                    box = metrics.threshold_box(heat, threshold)
                    iou = float(metrics.box_iou(box, boxes).max()) if box is not None else 0.0
                    rows.append({**base, "method": method, "threshold": threshold,
                                 "ratio_inside": metrics.ratio_inside_box(heat, boxes, threshold),
                                 "iou": iou, "pointing_hit": hit})
                if keep:
                    examples["maps"][method].append(normalize_maps(torch.from_numpy(heat)).numpy())
            if keep:
                examples["images"].append(np.asarray(data.load_rgb(record.path)))
                examples["titles"].append(f"{finding} ({record.name})")
                examples["boxes"].append(boxes)
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return Run(table, skipped, time.perf_counter() - start), examples


# --------------------------------------------------------------------------------------------
# Task 7: fidelity and contrastivity (Pope et al. 2019)
# --------------------------------------------------------------------------------------------

#: Task 7's methods, as the seed named them.
FIDELITY_METHODS = ("grad-cam", "shap", "integrated-gradients")


def saliency_maps(explainer, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Maps on Pope et al.'s 0..1 scale: the positive evidence for each class (ReLU of the raw
    map: Grad-CAM's maps are non-negative already, IG and SHAP are signed), min-max normalised
    per image and class with :func:`methods.normalize_maps`."""
    from .methods import normalize_maps

    return normalize_maps(explainer.attribute(images, classes).detach().clamp_min(0))


def run_fidelity_contrastivity(model: LoadedModel, images: torch.Tensor, labels: torch.Tensor, *,
                               methods=FIDELITY_METHODS, thresholds=(0.01, 0.10), background: torch.Tensor,
                               ig_steps: int = 32, shap_samples: int = 32, batch_size: int = 100, fill: float = 0.0,
                               seed: int = 0, progress: bool = True) -> Run:
    """Task 7 (Pope et al. 2019, Sec. 4.3) on ``images`` ([0, 1] pixels, the network's input):
    maps for each image's two highest-scoring classes. Per image, method and threshold:

    - fidelity inputs: whether the prediction is right before and after occluding (setting to
      ``fill``; 0 is black) the pixels whose saliency for the predicted class exceeds the
      threshold, and, as a reference, after occluding as many randomly chosen pixels (seeded);
    - contrastivity: the normalised Hamming distance between the binarised maps of the top-1 and
      top-2 classes (:func:`metrics.contrastivity`).
    """
    explainers = {m: make_explainer(m, model, background=background, ig_steps=ig_steps,
                                    shap_samples=shap_samples, seed=seed) for m in methods}
    device = model.device
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    rows = []
    for first in tqdm(range(0, len(images), batch_size), desc=f"Task 7 {model.name}", disable=not progress,
                      unit="batch", mininterval=5):
        x = to_model_input(images[first:first + batch_size], device)
        y = labels[first:first + batch_size].to(device)
        with torch.no_grad():
            top2 = model(x).topk(2, dim=1).indices
        correct_before = (top2[:, 0] == y).cpu().numpy()
        noise = torch.rand(x.shape[0], *x.shape[-2:], generator=generator).to(device)
        ranks = noise.flatten(1).argsort(1).argsort(1).view(noise.shape)  # random order of the pixels
        for method, explainer in explainers.items():
            saliency = saliency_maps(explainer, x, top2)  # (n, 2, H, W)
            for threshold in thresholds:
                masks = metrics.salient(saliency, threshold)
                top1_mask = masks[:, 0]
                count = top1_mask.flatten(1).sum(1)
                random_mask = ranks < count[:, None, None]
                with torch.no_grad():
                    after = model(torch.where(top1_mask[:, None], torch.full_like(x, fill), x)).argmax(1)
                    after_random = model(torch.where(random_mask[:, None], torch.full_like(x, fill), x)).argmax(1)
                contrast = metrics.contrastivity(masks[:, 0].cpu().numpy(), masks[:, 1].cpu().numpy())
                fraction = (count.float() / top1_mask[0].numel()).cpu().numpy()
                for i in range(x.shape[0]):
                    rows.append({"index": first + i, "label": int(y[i]), "predicted": int(top2[i, 0]),
                                 "second": int(top2[i, 1]), "method": method, "threshold": threshold,
                                 "correct_before": bool(correct_before[i]), "correct_after": bool(after[i] == y[i]),
                                 "correct_after_random": bool(after_random[i] == y[i]),
                                 "occluded_fraction": float(fraction[i]), "contrastivity": float(contrast[i])})
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(0, "model", model.name)
    return Run(table, [], time.perf_counter() - start)


def fidelity_examples(model: LoadedModel, images: torch.Tensor, *, methods=FIDELITY_METHODS,
                      background: torch.Tensor, ig_steps: int = 32, shap_samples: int = 32, seed: int = 0) -> dict:
    """For a few images: each method's 0..1 saliency for the top-1 and top-2 classes (figures)."""
    x = to_model_input(images, model.device)
    with torch.no_grad():
        top2 = model(x).topk(2, dim=1).indices
    maps = {}
    for method in methods:
        explainer = make_explainer(method, model, background=background, ig_steps=ig_steps,
                                   shap_samples=shap_samples, seed=seed)
        maps[method] = saliency_maps(explainer, x, top2).cpu().numpy()
    return {"images": images.permute(0, 2, 3, 1).squeeze(-1).cpu().numpy(), "classes": top2.cpu().numpy(),
            "maps": maps}


def background_batch(model: LoadedModel, records, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` records drawn by a seeded permutation, preprocessed for ``model``: the reference
    distribution of GradientSHAP. Unreadable images are left out of it."""
    order = np.random.default_rng(seed).permutation(len(records))[:count]
    iterator, _ = batches(model, [records[i] for i in order], max(1, count), progress=False)
    return torch.cat([images for images, _ in iterator])
