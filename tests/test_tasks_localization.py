"""Task 1 (:mod:`gradcam_core.tasks.localization`): rows on small real inputs checked against
direct computation, the full-size val-folder code path, mixed precision, threaded box
extraction, and the notebook end to end through papermill on that layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradcam_core import data, methods, metrics, tables
from gradcam_core.maps import normalize_maps, resize_to_image
from gradcam_core.methods import GradCAM
from gradcam_core.tasks import common, localization
from tests.helpers import run_full_profile_notebook


def test_centre_box_by_hand():
    # 200 x 100 image, half of each side: x from 50 to 150, y from 25 to 75
    box = localization.centre_box((200, 100), 0.5)
    assert box.dtype == np.float32 and box.tolist() == [50.0, 25.0, 150.0, 75.0]
    assert localization.centre_box((227, 227), 1.0).tolist() == [0.0, 0.0, 227.0, 227.0]


def test_localization_rows_match_direct_computation(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:6]
    run = localization.run_localization(
        squeezenet,
        records,
        thresholds=(0.15, 0.3),
        batch_size=4,
        image_space_images=2,
        image_space_topk=1,
        grabcut_images=1,
        progress=False,
    )
    table = run.table
    assert isinstance(run, localization.LocalizationRun) and isinstance(run, common.TaskRun)
    assert run.skipped == [] and set(table["image"]) == {r.name for r in records} and run.seconds > 0
    assert list(table.columns[:2]) == ["model", "image"] and set(table["model"]) == {"squeezenet1_1"}
    assert set(table["method"]) == set(localization.METHODS_AND_BASELINES)
    for method in localization.IMAGE_SPACE_METHODS:  # 2 images x 2 thresholds, top-1 class only
        rows = table[(table["method"] == method) & (table["boxing"] == "threshold")]
        assert len(rows) == 2 * 2 and rows["loc_topk"].isna().all()
    grabcut = table[table["boxing"] == "grab-cut"]
    assert sorted(grabcut["method"]) == sorted(localization.GRABCUT_METHODS)  # on the first image
    assert set(grabcut["image"]) == {records[0].name} and grabcut["threshold"].isna().all()
    assert table[table["method"].isin(localization.BASELINES)]["threshold"].isna().all()
    assert set(table.loc[table["method"].isin(localization.BASELINES), "boxing"]) == {"fixed"}
    # recompute one image's Grad-CAM top-1 localisation by hand
    record = records[0]
    x = squeezenet.preprocess([data.load_rgb(record.path)])
    maps, classes, _ = GradCAM(squeezenet).attribute_top_k(x, 5)
    heat = resize_to_image(maps[0], record.size)
    box = metrics.threshold_box(heat[0], 0.15)
    expected = metrics.localization_correct(int(classes[0, 0]), box, record.label, record.boxes)
    row = table[
        (table["image"] == record.name) & (table["method"] == "grad-cam") & (table["threshold"] == 0.15)
    ]
    assert row["loc_top1"].item() == expected
    assert row["cls_top1"].item() == (int(classes[0, 0]) == record.label)
    assert row["top5"].item() == " ".join(str(int(c)) for c in classes[0])
    # top-5 localisation: any of the five classes' boxes right
    any_right = any(
        metrics.localization_correct(
            int(classes[0, k]), metrics.threshold_box(heat[k], 0.15), record.label, record.boxes
        )
        for k in range(5)
    )
    assert row["loc_topk"].item() == any_right
    # c-MWP's grab-cut box of the top-1 class by hand
    cmwp = methods.create("c-mwp", squeezenet).attribute(x, classes[:, :1])
    box = metrics.grabcut_box(
        np.asarray(data.load_rgb(record.path)), resize_to_image(cmwp[0], record.size)[0]
    )
    expected = metrics.localization_correct(int(classes[0, 0]), box, record.label, record.boxes)
    assert grabcut.loc[grabcut["method"] == "c-mwp", "loc_top1"].item() == expected
    # the full-image and centre-box baselines by hand
    full = table[(table["image"] == record.name) & (table["method"] == "full-image")]
    iou = metrics.box_iou([[0, 0, *record.size]], record.boxes).max()
    assert full["loc_top1"].item() == bool(int(classes[0, 0]) == record.label and iou >= 0.5)
    centre = table[(table["image"] == record.name) & (table["method"] == "centre-box")]
    w, h = record.size
    iou = metrics.box_iou([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], record.boxes).max()
    assert centre["loc_top1"].item() == bool(int(classes[0, 0]) == record.label and iou >= 0.5)


def test_unknown_localization_method_is_refused(squeezenet, ilsvrc_records):
    with pytest.raises(ValueError, match="unknown localisation method"):
        localization.run_localization(squeezenet, ilsvrc_records[:1], methods=("lime",), progress=False)


def test_unreadable_image_is_skipped_and_counted(squeezenet, ilsvrc_records, tmp_path):
    bad = tmp_path / ilsvrc_records[1].name
    bad.write_bytes(b"truncated")
    records = [
        ilsvrc_records[0],
        data.ImageRecord(bad, ilsvrc_records[1].label, "x", ilsvrc_records[1].boxes, (227, 227)),
    ]
    run = localization.run_localization(squeezenet, records, methods=("grad-cam",), progress=False)
    assert run.skipped == [str(bad)] and set(run.table["image"]) == {ilsvrc_records[0].name}


def test_full_size_folder_runs_through_task_code(squeezenet, full_size_val_folder):
    records = data.load_ilsvrc_val(full_size_val_folder)
    assert all(r.size != (227, 227) for r in records)
    run = localization.run_localization(
        squeezenet, records, methods=("grad-cam", "full-image"), progress=False
    )
    assert run.table["image"].nunique() == 4 and run.skipped == []
    full = run.table[run.table["method"] == "full-image"]
    for r, ok in zip(records, full["loc_top1"]):  # boxes in the full-size frame
        assert ok == bool(
            r.label == int(full[full["image"] == r.name]["top5"].item().split()[0])
            and metrics.box_iou([[0, 0, *r.size]], r.boxes).max() >= 0.5
        )


def test_notebook_full_profile_code_path_through_papermill(full_size_val_folder, tmp_path):
    table = run_full_profile_notebook(
        "01_localization",
        full_size_val_folder,
        tmp_path,
        image_space_images=1,
        grabcut_images=1,
        tuning_images=1,
    )
    assert table["image"].nunique() == 3 and set(table["model"]) == {"squeezenet1_1"}


def test_only_requested_localization_methods_are_reported(squeezenet, ilsvrc_records):
    run = localization.run_localization(
        squeezenet, ilsvrc_records[:2], methods=("cam", "centre-box"), progress=False
    )
    assert set(run.table["method"]) == {"cam", "centre-box"}


def test_localization_examples_match_direct_computation(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:3]
    examples = localization.localization_examples(squeezenet, records, threshold=0.15, count=2)
    assert isinstance(examples, localization.LocalizationExamples)
    assert len(examples.images) == len(examples.heatmaps) == len(examples.titles) == 2
    record = records[1]
    assert examples.images[1].shape == (227, 227, 3) and np.array_equal(examples.gt_boxes[1], record.boxes)
    x = squeezenet.preprocess([data.load_rgb(record.path)])
    maps, classes, _ = GradCAM(squeezenet).attribute_top_k(x, 1)
    heat = resize_to_image(maps[0], record.size)[0]
    np.testing.assert_allclose(
        examples.heatmaps[1], normalize_maps(torch.from_numpy(heat)).numpy(), rtol=1e-5, atol=1e-6
    )
    box = metrics.threshold_box(heat, 0.15)
    assert (examples.pred_boxes[1] is None) == (box is None)
    if box is not None:
        np.testing.assert_array_equal(examples.pred_boxes[1], box)
    right = metrics.localization_correct(int(classes[0, 0]), box, record.label, record.boxes)
    name = squeezenet.class_names[int(classes[0, 0])]
    assert examples.titles[1] == f"{name} ({'right' if right else 'wrong'})"


# ------------------------------------------------------------------------------ precision, threads


def test_mixed_precision_maps_stay_within_tolerance_of_fp32(squeezenet, ilsvrc_records):
    """bf16 autocast (CPU): normalised Grad-CAM maps within 0.05 of fp32 everywhere, and the
    localisation decisions of at least 90 % of the images unchanged."""
    records = ilsvrc_records[:16]
    x = squeezenet.preprocess([data.load_rgb(r.path) for r in records])
    labels = [r.label for r in records]
    reference = normalize_maps(GradCAM(squeezenet).attribute(x, labels))
    with common.autocast(x.device, "bf16"):
        low = GradCAM(squeezenet).attribute(x, labels)
    assert low.dtype == torch.bfloat16
    assert float((normalize_maps(low.float()) - reference).abs().max()) <= 0.05
    fp32 = localization.run_localization(squeezenet, records, methods=("grad-cam",), progress=False).table
    bf16 = localization.run_localization(
        squeezenet, records, methods=("grad-cam",), precision="bf16", progress=False
    ).table
    assert (fp32["loc_topk"] == bf16["loc_topk"]).mean() >= 0.9 and (
        fp32["cls_top1"] == bf16["cls_top1"]
    ).all()
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        localization.run_localization(squeezenet, records[:1], precision="int8", progress=False)


def test_box_extraction_in_worker_processes_gives_the_same_rows(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:8]
    options = {
        "thresholds": (0.15, 0.5),
        "batch_size": 4,
        "progress": False,
        "methods": ("grad-cam", "cam", "full-image"),
    }
    inline = localization.run_localization(squeezenet, records, **options).table
    pooled = localization.run_localization(squeezenet, records, box_workers=2, **options).table
    pd.testing.assert_frame_equal(inline, pooled)
    assert len(inline) == len(records) * (2 * 2 + 1)  # two methods at two thresholds, one baseline


def test_box_workers_ship_float64_maps_and_grabcut_images(squeezenet, ilsvrc_records):
    """Grad-CAM++ (float64 maps) and grab-cut boxes (the image loaded in the worker) come out of
    the worker processes as from the model's process, with more images than the pending bound."""
    records = ilsvrc_records[:10]
    options = {
        "thresholds": (0.15,),
        "batch_size": 1,
        "progress": False,
        "methods": ("grad-cam", "grad-cam++", "backprop"),
        "image_space_images": 2,
        "image_space_topk": 1,
        "grabcut_images": 1,
    }
    inline = localization.run_localization(squeezenet, records, **options).table
    pooled = localization.run_localization(squeezenet, records, box_workers=1, **options).table
    pd.testing.assert_frame_equal(inline, pooled)
    assert (inline["boxing"] == "grab-cut").sum() == 1 and (inline["method"] == "backprop").sum() == 3
    with pytest.raises(ValueError, match="box_workers must be >= 0, got -1"):
        localization.run_localization(squeezenet, records[:1], box_workers=-1, progress=False)


def test_device_chunks_group_images_by_size_within_the_pixel_budget(monkeypatch):
    monkeypatch.setattr(localization, "_DEVICE_PIXELS", 2 * 100 * 100)
    sizes = [(100, 100), (10, 10), (300, 200), (100, 90), (20, 10)]
    # by height, then width: (10, 10) and (20, 10) pad to 20 x 10; a third image would pad to
    # 100 x 90 (3 x 9,000 pixels > 20,000); (100, 90) and (100, 100) pad to 100 x 100 (2 x 10,000);
    # the large image alone
    assert localization._device_chunks(sizes, 1) == [[1, 4], [3, 0], [2]]
    # 2 maps per image: (100, 90) and (100, 100) together would be 2 x 2 x 10,000 pixels
    assert localization._device_chunks(sizes, 2) == [[1, 4], [3], [0], [2]]
    assert localization._device_chunks([], 5) == []


def test_boxes_on_the_device_give_the_same_rows(
    squeezenet, ilsvrc_records, full_size_val_folder, monkeypatch
):
    """Boxes made a batch at once on the model's device (kornia's labelling) give the rows of
    opencv's, in the same order: full-size images of several sizes (zero-padded together), a sweep
    on the first image only, Grad-CAM++'s float64 maps, and a grab-cut image, which stays on the
    CPU."""
    options = {
        "thresholds": (0.15, 0.5),
        "sweep_images": 1,
        "batch_size": 3,
        "progress": False,
        "methods": ("grad-cam", "grad-cam++", "backprop", "centre-box"),
        "image_space_images": 2,
        "image_space_topk": 1,
        "grabcut_images": 1,
    }
    records = data.load_ilsvrc_val(full_size_val_folder)
    assert len({r.size for r in records}) > 1
    inline = localization.run_localization(squeezenet, records, **options).table
    on_device = localization.run_localization(squeezenet, records, boxes_on_device=True, **options).table
    pd.testing.assert_frame_equal(inline, on_device)
    assert (inline["boxing"] == "grab-cut").sum() == 1 and (inline["threshold"] == 0.5).sum() == 3
    # a pixel budget below one map: every image is a group of its own, its maps boxed one at a time
    monkeypatch.setattr(localization, "_DEVICE_PIXELS", 1000)
    one_by_one = localization.run_localization(squeezenet, records, boxes_on_device=True, **options).table
    pd.testing.assert_frame_equal(inline, one_by_one)
    embedded = localization.run_localization(squeezenet, ilsvrc_records[:5], **options).table
    pd.testing.assert_frame_equal(
        embedded,
        localization.run_localization(squeezenet, ilsvrc_records[:5], boxes_on_device=True, **options).table,
    )


def test_a_sweep_on_the_first_images_boxes_the_rest_at_the_headline_threshold(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:5]
    options = {
        "thresholds": (0.15, 0.3),
        "batch_size": 2,
        "progress": False,
        "methods": ("grad-cam", "centre-box"),
    }
    everywhere = localization.run_localization(squeezenet, records, **options).table
    sampled = localization.run_localization(squeezenet, records, sweep_images=3, **options).table
    at_30 = sampled[sampled["threshold"] == 0.3]
    assert list(at_30["image"]) == [r.name for r in records[:3]]
    pd.testing.assert_frame_equal(  # the same rows, less those at 0.3 after the first 3 images
        sampled.reset_index(drop=True),
        everywhere[(everywhere["threshold"] != 0.3) | everywhere["image"].isin(at_30["image"])].reset_index(
            drop=True
        ),
    )
    assert tables.sweep_sample(sampled)["image"].nunique() == 3
    with pytest.raises(ValueError, match=r"headline_threshold 0.15 must be one of thresholds \[0.3\]"):
        localization.run_localization(squeezenet, records, sweep_images=1, thresholds=(0.3,), progress=False)
    with pytest.raises(ValueError, match="sweep_images must be a positive number of images or None, got 0"):
        localization.run_localization(squeezenet, records, sweep_images=0, progress=False)
