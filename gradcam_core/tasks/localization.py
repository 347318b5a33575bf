"""Task 1 (paper Sec. 4.1, Table 1): weakly-supervised localisation on ILSVRC val -- a box from
each of the top-5 classes' maps, right when the class is right and the box overlaps a
ground-truth box with IoU >= 0.5."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .. import data, metrics
from ..maps import normalize_maps, resize_to_image, upsample
from ..methods import CAM, GradCAM, create
from ..models import LoadedModel
from .common import ImageBatches, TaskRun, autocast, with_model_column

#: Task 1's map methods (boxes from their maps) ...
MAP_METHODS = ("grad-cam", "cam", "backprop", "c-mwp", "excitation-backprop")
#: ... of which these attribute to pixels through a full backward pass per class (about ten
#: forward passes for the top 5): they run on the first ``image_space_images`` images only, and
#: the paper boxes their maps after grab-cut post-processing (Sec. 4.1) ...
IMAGE_SPACE_METHODS = ("backprop", "c-mwp", "excitation-backprop")
#: ... and its trivial baselines, which box without a map: the whole image, a centred box.
BASELINES = ("full-image", "centre-box")
#: Grad-CAM's successors in the CAM family, which a run may add (``methods``; not in the default,
#: which is the paper's Table 1): they share Grad-CAM's forward pass, except Score-CAM, whose
#: masked forward passes (one per channel) make it the costliest method of all; it runs on the
#: first ``image_space_images`` images like the image-space methods.
SUCCESSOR_METHODS = ("grad-cam++", "hirescam", "xgrad-cam", "layer-cam", "score-cam")
#: Methods that run on the first ``image_space_images`` images only.
COSTLY_METHODS = IMAGE_SPACE_METHODS + ("score-cam",)
#: The paper's binarisation threshold: 15 % of the map's maximum (Sec. 4.1).
PAPER_THRESHOLD = 0.15
#: The paper's rows (the default of a run) ...
METHODS_AND_BASELINES = MAP_METHODS + BASELINES
#: ... and every row label a localisation run can produce.
KNOWN_METHODS = METHODS_AND_BASELINES + SUCCESSOR_METHODS
#: The paper boxes its Backprop and c-MWP rows by grab-cut (Sec. 4.1).
GRABCUT_METHODS = ("backprop", "c-mwp")
#: How a row's box was made (the ``boxing`` column): from the map binarised at ``threshold``,
#: by grab-cut seeded from the map (:func:`gradcam_core.metrics.grabcut_box`), or fixed (baselines).
BOXINGS = ("threshold", "grab-cut", "fixed")


class LocalizationRun(TaskRun):
    """Task 1's per-image table: one row per image, method and box procedure (``boxing``:
    "threshold" rows, one per ``threshold``; "grab-cut" rows; "fixed" for the baselines, which
    have no threshold) with ``top5`` (the predicted classes), ``cls_top1``, ``cls_topk``,
    ``loc_top1``, ``loc_topk``."""


@dataclass
class LocalizationExamples:
    """Figure data: images, their normalised top-1 Grad-CAM maps at image size, ground-truth
    boxes, the box extracted from each map (or None) and a title per image."""

    images: list[np.ndarray]
    heatmaps: list[np.ndarray]
    gt_boxes: list[np.ndarray]
    pred_boxes: list
    titles: list[str]


def centre_box(size: tuple[int, int], side: float) -> np.ndarray:
    """A box centred in the image covering ``side`` of its width and of its height."""
    w, h = size
    return np.array(
        [w * (1 - side) / 2, h * (1 - side) / 2, w * (1 + side) / 2, h * (1 + side) / 2], np.float32
    )


def _scored(boxes: list, predicted, label: int, gt_boxes, n_thresholds: int) -> np.ndarray:
    """``(thresholds, k)`` hits of one image's threshold-major boxes (``None``: no box), those of
    its ``k`` maps (the first ``k`` predicted classes) at each of ``n_thresholds`` thresholds."""
    k = len(boxes) // n_thresholds
    hits = metrics.localization_hits(np.tile(predicted[:k], n_thresholds), boxes, label, gt_boxes)
    return hits.reshape(n_thresholds, k)


def _hits(heat: np.ndarray, predicted, label: int, gt_boxes, thresholds) -> np.ndarray:
    """For one image and method: ``(thresholds, k)`` hits of the boxes of its ``k`` maps."""
    boxes = [metrics.threshold_box(heat[j], t) for t in thresholds for j in range(len(heat))]
    return _scored(boxes, predicted, label, gt_boxes, len(thresholds))


def _grabcut_hits(image: np.ndarray, heat: np.ndarray, predicted, label: int, gt_boxes) -> np.ndarray:
    """For one image and method: ``(k,)`` hits of the grab-cut boxes of its ``k`` maps."""
    boxes = [metrics.grabcut_box(image, heat[j]) for j in range(len(heat))]
    return metrics.localization_hits(predicted[: len(heat)], boxes, label, gt_boxes)


def _image_hits(maps: dict, record: data.ImageRecord, predicted, thresholds, grabcut_methods) -> dict:
    """Every box of one image (paper Sec. 4.1) from its maps as the model made them
    (``{method: (k, h, w) array}``, at the model's input resolution, e.g. 224 x 224, smaller than
    the image's to ship to a worker process): each map resized to the image, thresholded at each
    of ``thresholds`` and boxed, and for ``grabcut_methods`` also boxed by grab-cut on the image
    (loaded here). Returns
    ``{(method, boxing): hits}`` in the order of ``maps``."""
    image = np.asarray(data.load_rgb(record.path)) if grabcut_methods else None
    hits = {}
    for method, raw in maps.items():
        heat = resize_to_image(torch.from_numpy(raw), record.size)
        hits[method, "threshold"] = _hits(heat, predicted, record.label, record.boxes, thresholds)
        if method in grabcut_methods:
            hits[method, "grab-cut"] = _grabcut_hits(image, heat, predicted, record.label, record.boxes)
    return hits


#: Map pixels resized, or boxed, together on the device (padding included): bounds the memory, about
#: 90 bytes per pixel at the peak of the labelling, so about 1.5 GB (some val images are 10
#: megapixels or more: their maps are boxed a few at a time).
_DEVICE_PIXELS = 2**24


def _threshold_boxes_in_slices(heat: torch.Tensor, rows: torch.Tensor, sizes: torch.Tensor, threshold: float):
    """:func:`gradcam_core.metrics.threshold_boxes` of the maps ``heat[rows]`` (sizes ``sizes[rows]``),
    as few maps at a time as keep each call within :data:`_DEVICE_PIXELS` (at least one)."""
    step = max(1, _DEVICE_PIXELS // (heat.shape[-2] * heat.shape[-1]))
    parts = [
        metrics.threshold_boxes(heat[part.to(heat.device)], threshold, sizes[part])
        for part in rows.split(step)
    ]
    return torch.cat([b for b, _ in parts]), torch.cat([f for _, f in parts])


def _device_chunks(sizes, k: int) -> list[list[int]]:
    """Images (indices into ``sizes``, (width, height) each) in groups to box together: by size,
    so that a group pads little, each group's ``k`` maps per image, zero-padded to its largest
    width and height, within :data:`_DEVICE_PIXELS` (an image larger than that alone)."""
    chunks, current, width, height = [], [], 0, 0
    for i in sorted(range(len(sizes)), key=lambda i: (sizes[i][1], sizes[i][0])):
        w, h = max(width, sizes[i][0]), max(height, sizes[i][1])
        if current and (len(current) + 1) * k * w * h > _DEVICE_PIXELS:
            chunks.append(current)
            current, w, h = [], sizes[i][0], sizes[i][1]
        current.append(i)
        width, height = w, h
    return chunks + [current] if current else chunks


def _device_batch_hits(per_method: dict, records, predicted, image_thresholds) -> list[dict]:
    """:func:`_image_hits` (threshold boxes only) for a batch, on the maps' device: each map
    resized to its image there (:func:`~gradcam_core.maps.upsample`), zero-padded to the largest of
    a group of images of similar size (:func:`_device_chunks`) and boxed with the other maps of
    the group (:func:`gradcam_core.metrics.threshold_boxes`, kornia's labelling, the same boxes as
    opencv's for the same map; on a GPU the resize may differ from the CPU's in the last bit, so a
    pixel at a threshold's level may flip: ``benchmarks/check_device_boxes.py`` counts it). ``per_method``:
    ``{method: (n, k, h, w) tensor}`` for the batch's first ``n`` images; ``image_thresholds``:
    per image, the thresholds to box it at. Returns per image ``{(method, "threshold"): hits}``."""
    hits = [{} for _ in records]
    for method, maps in per_method.items():
        maps = maps.detach()
        dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
        k = maps.shape[1]
        for chunk in _device_chunks([records[i].size for i in range(len(maps))], k):
            sizes = [records[i].size for i in chunk]
            width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
            heat = maps.new_zeros((len(chunk), k, height, width), dtype=dtype)
            for n, (i, (w, h)) in enumerate(zip(chunk, sizes)):
                one = maps[i : i + 1].to(dtype)
                heat[n, :, :h, :w] = (one if one.shape[-2:] == (h, w) else upsample(one, (h, w)))[0]
            heat = heat.flatten(0, 1)
            size_rows = torch.tensor(sizes).repeat_interleave(k, dim=0)
            for thresholds in dict.fromkeys(image_thresholds[i] for i in chunk):  # groups in order
                members = [n for n, i in enumerate(chunk) if image_thresholds[i] == thresholds]
                rows = torch.tensor([n * k + j for n in members for j in range(k)])
                per_threshold = [_threshold_boxes_in_slices(heat, rows, size_rows, t) for t in thresholds]
                boxes = torch.stack([b for b, _ in per_threshold], 1).cpu().numpy()  # (rows, T, 4)
                found = torch.stack([f for _, f in per_threshold], 1).cpu().numpy()
                for m, n in enumerate(members):
                    i = chunk[n]
                    mine = slice(m * k, (m + 1) * k)  # (k, T) -> threshold-major
                    listed = [
                        box if ok else None
                        for box, ok in zip(
                            boxes[mine].transpose(1, 0, 2).reshape(-1, 4), found[mine].T.ravel()
                        )
                    ]
                    hits[i][method, "threshold"] = _scored(
                        listed, predicted[i], records[i].label, records[i].boxes, len(thresholds)
                    )
    return hits


def _box_worker_setup() -> None:
    """A box worker process computes on one core (the model's process has the others)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _shippable(maps: torch.Tensor) -> np.ndarray:
    """Maps as a CPU numpy array for a box worker: float32, or float64 where the method made
    float64 (Grad-CAM++'s raw scale, :func:`~gradcam_core.maps.resize_to_image`)."""
    maps = maps.detach()
    return (maps if maps.dtype == torch.float64 else maps.float()).cpu().numpy()


def _worker_context():
    """Worker processes forked from a fork server that has imported this module once (started
    on first use, kept for the session: a later run's workers start in milliseconds, and none is
    forked from a process whose torch threads are running); spawned where there is no fork
    server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class _Done:
    """A result computed at once, read like a future's."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class BoxExtraction:
    """Task 1's boxes off the model's critical path (paper Sec. 4.1): with ``workers`` >= 1,
    :func:`_image_hits` runs in that many worker processes (:func:`_worker_context`, one core
    each; opencv's
    connected components in a thread of the model's process would hold the GIL for its numpy
    half), to which each image's maps travel at the model's input resolution (e.g. 5 x 224 x 224
    floats) rather than at image size; the model's process goes on to the next batch while they
    work. With 0 they run in the calling process as each image comes. :meth:`submit` returns
    something with ``result()``, in either case."""

    def __init__(self, workers: int = 0):
        if workers < 0:
            raise ValueError(f"box_workers must be >= 0, got {workers!r}")
        self.pool = None
        if workers:
            self.pool = ProcessPoolExecutor(
                workers, mp_context=_worker_context(), initializer=_box_worker_setup
            )

    def submit(self, *work):
        return self.pool.submit(_image_hits, *work) if self.pool else _Done(_image_hits(*work))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool:
            self.pool.shutdown(cancel_futures=exc[0] is not None)


def _row(base: dict, method: str, boxing: str, threshold: float, hits, topk: int) -> dict:
    """One result row; top-k localisation is undefined (NaN) when fewer than ``topk`` classes
    were boxed."""
    return {
        **base,
        "method": method,
        "boxing": boxing,
        "threshold": threshold,
        "loc_top1": bool(hits[0]),
        "loc_topk": bool(np.any(hits)) if len(hits) == topk else np.nan,
    }


def _first(batch: int, limit: int | None, seen: int) -> int:
    """How many images of a batch fall within the first ``limit`` images of the run (all of
    them without a limit), ``seen`` images having gone before."""
    return batch if limit is None else max(0, min(batch, limit - seen))


#: Batches whose boxes may still be in the works while the model goes on.
_PENDING_BATCHES = 4


def _image_rows(record, predicted, hits, thresholds, methods, topk: int, centre_box_side) -> list[dict]:
    """One image's result rows: each method's boxes (``hits``, a future of
    :func:`_image_hits`, at ``thresholds``), then the trivial baselines of ``methods``."""
    base = {
        "image": record.name,
        "label": record.label,
        "top5": " ".join(map(str, predicted)),
        "cls_top1": bool(predicted[0] == record.label),
        "cls_topk": bool(record.label in predicted),
    }
    rows = []
    for (method, boxing), hit in hits.result().items():
        if boxing == "threshold":
            rows.extend(_row(base, method, boxing, t, h, topk) for t, h in zip(thresholds, hit))
        else:
            rows.append(_row(base, method, boxing, np.nan, hit, topk))
    for method, box in (
        ("full-image", np.array([0, 0, *record.size], np.float32)),
        ("centre-box", centre_box(record.size, centre_box_side)),
    ):
        if method in methods:
            hit = metrics.localization_hits(predicted, [box] * topk, record.label, record.boxes)
            rows.append(_row(base, method, "fixed", np.nan, hit, topk))
    return rows


def run_localization(
    model: LoadedModel,
    records,
    *,
    thresholds=(PAPER_THRESHOLD,),
    topk=5,
    methods=METHODS_AND_BASELINES,
    image_space_images: int | None = None,
    image_space_topk: int | None = None,
    grabcut_images: int | None = None,
    grabcut_methods=GRABCUT_METHODS,
    centre_box_side=0.5,
    precision="fp32",
    box_workers=0,
    boxes_on_device=False,
    sweep_images: int | None = None,
    headline_threshold=PAPER_THRESHOLD,
    **loading,
) -> LocalizationRun:
    """Task 1 (paper Sec. 4.1, Table 1): for each image, the top-``topk`` classes, a map per class
    and method, a box per map and threshold, and whether classification and localisation are
    right at top-1 and top-``topk``. One row per image, method and box procedure.

    ``methods`` may add Grad-CAM's successors (:data:`SUCCESSOR_METHODS`; the chapter beyond the
    paper), whose maps come from Grad-CAM's forward pass. ``image_space_images`` limits the
    costly methods (:data:`COSTLY_METHODS`: the image-space methods gradient saliency "Backprop",
    c-MWP and Excitation Backprop, whose backward passes cost 2-6 forward passes per class, and
    Score-CAM, one forward pass per channel) to the first images of the run, and ``image_space_topk`` (default
    ``topk``) to the first predicted classes (with fewer than ``topk``, their top-k
    localisation is NaN). On the first ``grabcut_images`` of those images the maps of
    ``grabcut_methods`` (:data:`GRABCUT_METHODS`) are also boxed the paper's way for its
    Backprop and c-MWP rows: grab-cut seeded from the map
    (:func:`gradcam_core.metrics.grabcut_box`, rows with ``boxing`` = "grab-cut"; about 0.3 s
    per box on a CPU core). ``box_workers`` >= 1 extracts the boxes in that many worker processes
    while the model goes on (:class:`BoxExtraction`; on a GPU the boxes, on the CPU, were the
    bottleneck); rows come out the same and in the same order either way. ``boxes_on_device``
    resizes, thresholds and boxes the maps on the model's device instead, a batch at once
    (:func:`gradcam_core.metrics.threshold_boxes`: kornia's connected components, the same boxes
    as opencv's for the same maps; on a GPU the resize may differ from the CPU's in the last bit);
    the grab-cut images stay on the CPU. ``sweep_images``
    limits the threshold sweep to the first images of the run: after them, maps are boxed at
    ``headline_threshold`` only (the paper's 15 %, one of ``thresholds``), which is all the
    headline needs (a sweep on a sample, checked by
    :func:`gradcam_core.tables.sweep_sample_check`); None sweeps every image. ``loading``:
    how images are loaded (:class:`~gradcam_core.tasks.common.ImageBatches`: ``batch_size``,
    ``num_workers``, ``progress``).
    """
    unknown = set(methods) - set(KNOWN_METHODS)
    if unknown:
        raise ValueError(f"unknown localisation method(s) {sorted(unknown)}; known: {KNOWN_METHODS}")
    not_mapped = set(grabcut_methods) - set(MAP_METHODS)
    if not_mapped:
        raise ValueError(f"grab-cut boxes need a map method; got {sorted(not_mapped)}; known: {MAP_METHODS}")
    thresholds = tuple(thresholds)
    if sweep_images is not None and (isinstance(sweep_images, bool) or not int(sweep_images) >= 1):
        raise ValueError(f"sweep_images must be a positive number of images or None, got {sweep_images!r}")
    if sweep_images is not None and headline_threshold not in thresholds:
        raise ValueError(
            f"headline_threshold {headline_threshold} must be one of thresholds {list(thresholds)}"
        )
    start = time.perf_counter()
    gradcam = GradCAM(model)
    cam = CAM(model) if "cam" in methods and model.spec.cam_compatible else None
    image_space = {name: create(name, model) for name in COSTLY_METHODS if name in methods}
    successors = {
        name: create(name, model) for name in SUCCESSOR_METHODS if name in methods and name not in image_space
    }
    rows = []
    batches = ImageBatches(model, records, f"Task 1 {model.name}", **loading)
    pending = deque()  # per image in order: (record, predicted classes, its boxes' hits to come)
    seen = 0
    with BoxExtraction(box_workers) as boxes:
        for images, indices in batches:
            with autocast(images.device, precision):
                forward = gradcam.forward(images)
                classes = forward.logits.detach().topk(topk, dim=1).indices
                per_method = {"grad-cam": gradcam.maps(forward, classes)} if "grad-cam" in methods else {}
                if cam is not None:
                    per_method["cam"] = cam.maps(forward, classes)
                for name, successor in successors.items():  # the same forward pass
                    per_method[name] = successor.maps(forward, classes)
            limit = _first(len(indices), image_space_images, seen)
            if limit:  # maps for the first `limit` images of the batch only
                for name, explainer in image_space.items():
                    per_method[name] = explainer.attribute(images[:limit], classes[:limit, :image_space_topk])
            grabcut_limit = min(limit, _first(len(indices), grabcut_images, seen))
            classes = classes.cpu().numpy()
            batch_records = [records[index] for index in indices]
            batch_thresholds = [
                thresholds if _first(1, sweep_images, seen + row) else (headline_threshold,)  # swept?
                for row in range(len(indices))
            ]
            on_device, cpu_rows = None, len(indices)
            if boxes_on_device:  # the grab-cut images go the CPU's way below
                cpu_rows = grabcut_limit if any(name in per_method for name in grabcut_methods) else 0
                on_device = _device_batch_hits(
                    {name: maps[cpu_rows:] for name, maps in per_method.items()},
                    batch_records[cpu_rows:],
                    classes[cpu_rows:],
                    batch_thresholds[cpu_rows:],
                )
            per_method = {name: _shippable(maps[:cpu_rows]) for name, maps in per_method.items()}
            for row_in_batch, record in enumerate(batch_records):
                image_thresholds = batch_thresholds[row_in_batch]
                if row_in_batch >= cpu_rows:
                    hits = _Done(on_device[row_in_batch - cpu_rows])
                else:
                    maps = {name: m[row_in_batch] for name, m in per_method.items() if row_in_batch < len(m)}
                    grabcut = [
                        name for name in grabcut_methods if name in maps and row_in_batch < grabcut_limit
                    ]
                    hits = boxes.submit(maps, record, classes[row_in_batch], image_thresholds, grabcut)
                pending.append((record, classes[row_in_batch], hits, image_thresholds))
            seen += len(indices)
            while len(pending) > _PENDING_BATCHES * len(indices):  # bounded: rows in order as they finish
                rows.extend(_image_rows(*pending.popleft(), methods, topk, centre_box_side))
        while pending:
            rows.extend(_image_rows(*pending.popleft(), methods, topk, centre_box_side))
    return LocalizationRun(with_model_column(rows, model), batches.skipped, time.perf_counter() - start)


def localization_examples(
    model: LoadedModel, records, threshold=PAPER_THRESHOLD, count=5
) -> LocalizationExamples:
    """For a figure: the first ``count`` images, their normalised top-1 Grad-CAM maps at image
    size, the ground-truth boxes and the box Task 1 extracts from each map."""
    chosen = list(records[:count])
    images = [data.load_rgb(r.path) for r in chosen]
    maps, classes, _ = GradCAM(model).attribute_top_k(model.preprocess(images), 1)
    heatmaps, boxes, titles = [], [], []
    for record, raw, cls in zip(chosen, maps, classes[:, 0].tolist()):
        heat = resize_to_image(raw, record.size)[0]
        box = metrics.threshold_box(heat, threshold)
        heatmaps.append(normalize_maps(torch.from_numpy(heat)).numpy())
        boxes.append(box)
        right = metrics.localization_correct(cls, box, record.label, record.boxes)
        titles.append(f"{model.class_names[cls]} ({'right' if right else 'wrong'})")
    return LocalizationExamples(
        [np.asarray(im) for im in images], heatmaps, [r.boxes for r in chosen], boxes, titles
    )
