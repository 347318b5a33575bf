"""Grad-CAM's successors (:mod:`gradcam_core.tasks.successors`): the difficult subset, the
architecture test of the CAM family's identities, the identities themselves on the embedded
models, the cost of a map, the successors' localisation and pointing rows checked against direct
computation, and the figure data.

Score-CAM costs one forward pass per channel of the target layer (512 on SqueezeNet, 768 on
MobileNet: tens of seconds per image on a loaded CPU), so the rows that need it are checked on a
tiny hand-made CAM model with four channels (:func:`_tiny_cam_model`)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from gradcam_core import data, methods, metrics
from gradcam_core.maps import normalize_maps, resize_to_image
from gradcam_core.tasks import localization, successors
from gradcam_core.tasks.common import MapExamples
from gradcam_core.tasks.pointing import PointingRun
from tests.helpers import loaded_module

CHEAP_SUCCESSORS = ("grad-cam++", "hirescam", "xgrad-cam", "layer-cam")


def _tiny_cam_model(favoured: int, *, classifier: nn.Module | None = None, cam_compatible: bool = True):
    """A seeded 4-channel CAM model on 64 px inputs: conv (8 x 8, stride 8) + ReLU as the target
    layer ``features``, global average pooling, and a linear classifier over 1000 classes whose
    bias favours class ``favoured`` by 50 (so every image's top-1 class is ``favoured``)."""
    torch.manual_seed(0)
    linear = nn.Linear(4, 1000)
    with torch.no_grad():
        linear.bias[favoured] += 50.0
    module = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            classifier=classifier if classifier is not None else linear,
        )
    )
    return loaded_module(
        module,
        [f"class {i}" for i in range(1000)],
        target_layer="features",
        classifier="classifier",
        input_size=64,
        cam_compatible=cam_compatible,
    )


@pytest.fixture(scope="module")
def tiny(ilsvrc_records):
    return _tiny_cam_model(ilsvrc_records[0].label)


# ------------------------------------------------------------------------------ the subsets and the test


def test_difficult_records_are_those_with_small_boxes(ilsvrc_records):
    records = ilsvrc_records[:30]
    coverages = [metrics.box_coverage((r.size[1], r.size[0]), r.boxes) for r in records]
    expected = [r.name for r, c in zip(records, coverages) if c < metrics.DIFFICULT_COVERAGE]
    chosen = successors.difficult_records(records)
    assert [r.name for r in chosen] == expected
    # the first 30 embedded images: 6 difficult ones, the first at coverage 0.19 (image 0)
    assert [records.index(r) for r in chosen] == [0, 19, 21, 23, 25, 26]
    assert coverages[0] == pytest.approx(0.19, abs=5e-3) and coverages[1] >= 0.25
    assert successors.difficult_records([]) == []


def test_ends_in_gap_linear(squeezenet, mobilenet, ilsvrc_records):
    assert successors.ends_in_gap_linear(mobilenet) is True
    assert successors.ends_in_gap_linear(squeezenet) is False  # 1x1 conv + ReLU before the pooling
    label = ilsvrc_records[0].label
    assert successors.ends_in_gap_linear(_tiny_cam_model(label)) is True
    assert successors.ends_in_gap_linear(_tiny_cam_model(label, cam_compatible=False)) is False
    conv = _tiny_cam_model(label, classifier=nn.Conv2d(4, 1000, 1))
    assert successors.ends_in_gap_linear(conv) is False


# ------------------------------------------------------------------------------ the identities


def test_gradcam_identities_on_mobilenet(mobilenet, ilsvrc_records):
    records = ilsvrc_records[:2]
    run = successors.run_gradcam_identities(mobilenet, records, batch_size=2, progress=False)
    table = run.table
    assert run.skipped == [] and run.seconds > 0
    assert list(table.columns) == ["model", "image", "method", "max_abs_difference", "gap_linear"]
    # Score-CAM is left out (its weights are not gradients); 4 successors x 2 images
    assert sorted(set(table["method"])) == sorted(CHEAP_SUCCESSORS) and len(table) == 8
    assert set(table["image"]) == {r.name for r in records} and table["gap_linear"].all()
    by = table.set_index(["method", "image"])["max_abs_difference"]
    # GAP + linear classifier: HiResCAM and XGrad-CAM equal Grad-CAM up to float rounding
    assert (by.loc["hirescam"] <= 1e-5).all() and (by.loc["xgrad-cam"] <= 1e-5).all()
    assert (by.loc["layer-cam"] > 1e-2).all() and (by.loc["grad-cam++"] > 1e-2).all()
    # LayerCAM's difference by hand for the first image
    x = mobilenet.preprocess([data.load_rgb(records[0].path)])
    gradcam = methods.GradCAM(mobilenet)
    forward = gradcam.forward(x)
    classes = forward.logits.detach().argmax(dim=1, keepdim=True)
    expected = (
        (
            normalize_maps(methods.LayerCAM(mobilenet).attribute(x, classes))
            - normalize_maps(gradcam.maps(forward, classes))
        )
        .abs()
        .max()
    )
    assert by.loc[("layer-cam", records[0].name)] == pytest.approx(float(expected), abs=1e-6)


def test_gradcam_identities_on_squeezenet(squeezenet, ilsvrc_records):
    table = successors.run_gradcam_identities(
        squeezenet, ilsvrc_records[:2], methods=("xgrad-cam", "layer-cam", "score-cam"), progress=False
    ).table
    assert list(table["method"]) == ["xgrad-cam", "xgrad-cam", "layer-cam", "layer-cam"]  # no score-cam
    assert not table["gap_linear"].any() and (table["model"] == "squeezenet1_1").all()
    # a 1x1 convolution and a ReLU before the pooling: XGrad-CAM's weights differ from Grad-CAM's
    assert (table.loc[table["method"] == "xgrad-cam", "max_abs_difference"] > 1e-3).all()
    assert (table.loc[table["method"] == "layer-cam", "max_abs_difference"] > 1e-2).all()
    assert table["max_abs_difference"].le(1.0).all()  # normalised maps differ by at most 1


# ------------------------------------------------------------------------------ cost


def test_method_costs_columns_and_counts(squeezenet, ilsvrc_records):
    costs = successors.method_costs(
        squeezenet,
        ilsvrc_records,
        ["grad-cam", "backprop"],
        images=2,
        method_images={"backprop": 1},
        repeats=1,
    )
    assert list(costs.columns) == ["model", "method", "images", "seconds_per_image", "forward_passes"]
    assert costs["model"].tolist() == ["squeezenet1_1"] * 2
    assert costs["method"].tolist() == ["grad-cam", "backprop"] and costs["images"].tolist() == [2, 1]
    assert (costs["seconds_per_image"] > 0).all() and (costs["forward_passes"] > 0).all()
    assert np.isfinite(costs[["seconds_per_image", "forward_passes"]].to_numpy()).all()


# ------------------------------------------------------------------------------ localisation


def test_successor_localization_rows_and_score_cam_on_the_first_image(tiny, ilsvrc_records):
    records = ilsvrc_records[:3]
    thresholds = (0.15, 0.5)
    run = successors.run_successor_localization(
        tiny, records, thresholds=thresholds, score_cam_images=1, batch_size=2, progress=False
    )
    table = run.table
    assert ("grad-cam", *CHEAP_SUCCESSORS, "score-cam") == successors.CAM_METHODS
    # per image 5 gradient methods x 2 thresholds; Score-CAM only on the first image
    counts = table.groupby(["image", "method"]).size()
    for r in records:
        assert all(counts[(r.name, m)] == 2 for m in ("grad-cam", *CHEAP_SUCCESSORS))
    assert set(table.loc[table["method"] == "score-cam", "image"]) == {records[0].name}
    assert len(table) == 3 * 5 * 2 + 2
    assert set(table["boxing"]) == {"threshold"} and set(table["threshold"]) == set(thresholds)
    # top-1 only: the top-k decision is the top-1 one; the tiny model predicts image 0's class
    assert table["loc_topk"].astype(bool).tolist() == table["loc_top1"].tolist()
    assert (table["top5"] == str(records[0].label)).all()
    assert table.loc[table["image"] == records[0].name, "cls_top1"].all()
    # the Score-CAM rows by hand
    record = records[0]
    x = tiny.preprocess([data.load_rgb(record.path)])
    heat = resize_to_image(methods.ScoreCAM(tiny).attribute(x, record.label)[0], record.size)[0]
    rows = table[(table["method"] == "score-cam")].set_index("threshold")
    for t in thresholds:
        box = metrics.threshold_box(heat, t)
        assert rows.loc[t, "loc_top1"] == metrics.localization_correct(
            record.label, box, record.label, record.boxes
        )


def test_successor_localization_on_mobilenet_gives_gradcams_boxes(mobilenet, ilsvrc_records):
    """On a GAP + linear model HiResCAM's and XGrad-CAM's maps are Grad-CAM's, so are their boxes;
    ``score_cam_images=0`` leaves Score-CAM out."""
    records = ilsvrc_records[:3]
    table = successors.run_successor_localization(
        mobilenet, records, thresholds=(0.15, 0.4), score_cam_images=0, progress=False
    ).table
    assert "score-cam" not in set(table["method"]) and len(table) == 3 * 5 * 2
    wide = table.pivot_table(
        index=["image", "threshold"], columns="method", values="loc_top1", aggfunc="first"
    )
    assert wide["hirescam"].equals(wide["grad-cam"]) and wide["xgrad-cam"].equals(wide["grad-cam"])
    assert wide["grad-cam"].any()  # some box is right: the comparison is not of all-False columns


def test_run_localization_accepts_the_successors(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:2]
    table = localization.run_localization(
        squeezenet,
        records,
        topk=2,
        methods=("grad-cam", "layer-cam", "score-cam", "full-image"),
        image_space_images=0,  # Score-CAM is a costly method: none of its maps here
        progress=False,
    ).table
    assert sorted(set(table["method"])) == ["full-image", "grad-cam", "layer-cam"]
    layer = table[table["method"] == "layer-cam"].set_index("image")
    assert len(layer) == 2 and layer["loc_topk"].notna().all()  # both top-2 classes boxed
    # LayerCAM's top-1 box by hand for the first image
    record = records[0]
    x = squeezenet.preprocess([data.load_rgb(record.path)])
    maps, classes, _ = methods.LayerCAM(squeezenet).attribute_top_k(x, 2)
    heat = resize_to_image(maps[0], record.size)
    boxes = [metrics.threshold_box(heat[j], localization.PAPER_THRESHOLD) for j in range(2)]
    hits = metrics.localization_hits(classes[0].numpy(), boxes, record.label, record.boxes)
    assert layer.loc[record.name, "loc_top1"] == bool(hits[0])
    assert layer.loc[record.name, "loc_topk"] == bool(hits.any())
    assert layer.loc[record.name, "top5"] == " ".join(map(str, classes[0].tolist()))


def test_run_localization_still_refuses_unknown_methods(squeezenet, ilsvrc_records):
    with pytest.raises(ValueError, match=r"unknown localisation method\(s\) \['lime'\]"):
        localization.run_localization(
            squeezenet, ilsvrc_records[:1], methods=("grad-cam", "hirescam", "lime"), progress=False
        )


# ------------------------------------------------------------------------------ pointing


def test_successor_pointing_on_the_difficult_images(tiny, ilsvrc_records):
    records = ilsvrc_records[:20]
    difficult = successors.difficult_records(records)
    assert [r.name for r in difficult] == [records[0].name, records[19].name]
    run = successors.run_successor_pointing(tiny, records, score_cam_images=1, batch_size=2, progress=False)
    table = run.table
    assert isinstance(run, PointingRun) and run.skipped == []
    assert set(table["image"]) == {r.name for r in difficult} and table["difficult"].all()
    per_method = table.groupby("method")["image"].apply(set).to_dict()
    for name in (*CHEAP_SUCCESSORS, "centre"):
        assert per_method[name] == {r.name for r in difficult}
    assert per_method["score-cam"] == {records[0].name}  # score_cam_images=1
    # the successors are cued with the ground truth only, one row per image
    others = table[table["method"] != "grad-cam"]
    assert others["is_gt"].all() and (others["cue"] == others["label"]).all()
    assert others.groupby(["method", "image"]).size().eq(1).all()
    # Grad-CAM also cued with the top-5 predictions
    gradcam = table[table["method"] == "grad-cam"]
    assert (gradcam["rank"] > 0).groupby(gradcam["image"]).sum().eq(5).all()
    # Score-CAM's hit by hand
    record = records[0]
    x = tiny.preprocess([data.load_rgb(record.path)])
    heat = resize_to_image(methods.ScoreCAM(tiny).attribute(x, record.label)[0], record.size)[0]
    row = table[table["method"] == "score-cam"].iloc[0]
    assert row["hit"] == metrics.pointing_hit(
        heat, record.boxes, metrics.POINTING_TOLERANCE, record.pixel_scale
    )
    assert row["raw_max"] == pytest.approx(float(heat.max()), rel=1e-5)


def test_successor_pointing_without_score_cam(mobilenet, ilsvrc_records):
    records = ilsvrc_records[:15]  # one difficult image (the first)
    table = successors.run_successor_pointing(mobilenet, records, score_cam_images=0, progress=False).table
    assert set(table["image"]) == {records[0].name} and "score-cam" not in set(table["method"])
    hits = table[table["is_gt"]].set_index("method")["hit"]
    # GAP + linear: HiResCAM's and XGrad-CAM's maxima are Grad-CAM's
    assert hits["hirescam"] == hits["grad-cam"] and hits["xgrad-cam"] == hits["grad-cam"]


def test_successor_pointing_with_no_difficult_image(tiny, ilsvrc_records):
    records = ilsvrc_records[1:6]  # coverages 0.37-0.56: none difficult
    assert successors.difficult_records(records) == []
    run = successors.run_successor_pointing(tiny, records, score_cam_images=1, progress=False)
    assert run.table.empty


# ------------------------------------------------------------------------------ figure data


def test_successor_examples(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:3]
    examples = successors.successor_examples(squeezenet, records, ["grad-cam", "backprop"], count=1)
    assert isinstance(examples, MapExamples)
    assert len(examples.images) == 1 and examples.images[0].shape == (224, 224, 3)
    pixels = squeezenet.spec.pixels(data.load_rgb(records[0].path)).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(examples.images[0], pixels)
    assert list(examples.maps) == ["grad-cam", "backprop"]
    for maps in examples.maps.values():
        assert maps.shape == (1, 224, 224) and maps.min() >= 0.0 and maps.max() == pytest.approx(1.0)
    x = squeezenet.preprocess([data.load_rgb(records[0].path)])
    with torch.no_grad():
        predicted = int(squeezenet(x).argmax(dim=1))
    assert examples.titles == [squeezenet.class_names[predicted]]
    expected = normalize_maps(methods.GradCAM(squeezenet).attribute(x, predicted)[:, 0]).numpy()
    np.testing.assert_allclose(examples.maps["grad-cam"], expected, atol=1e-6)
    assert pd.Series(examples.maps["grad-cam"].ravel()).nunique() > 2  # a map, not a constant
