"""Task 5 (:mod:`gradcam_core.tasks.chest_xray`): rows on the embedded boxed X-rays checked
against direct computation with a random-weight stand-in, the X-ray sets, and the CheXNet
full-profile path through papermill, offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradcam_core import data, metrics, models
from gradcam_core.maps import normalize_maps, resize_to_image
from gradcam_core.methods import GradCAM
from gradcam_core.tasks import chest_xray, common
from tests.helpers import random_standin, run_papermill


@pytest.fixture(scope="module")
def random_cxr_standin(tmp_path_factory):
    """The X-ray stand-in's architecture with random weights, loaded through the registry."""
    return random_standin("squeezenet1_1-cxr", tmp_path_factory.mktemp("cxr"))


@pytest.fixture(scope="module")
def boxed():
    return [r for r in data.load_nih_cxr() if r.boxes]


#: Task 5's methods, in the seed's order (what the notebook runs by default).
XRAY_METHODS = ("grad-cam", "grad-cam++", "integrated-gradients", "gradient-shap")


def test_xray_class_index(random_cxr_standin, squeezenet):
    assert chest_xray.xray_class_index(random_cxr_standin, "Mass") == data.NIH_FINDINGS.index("Mass")
    assert chest_xray.xray_class_index(squeezenet, "Mass") is None


def test_embedded_xrays_split_into_boxed_and_reference(capsys):
    xrays = chest_xray.load_xrays()
    assert isinstance(xrays, chest_xray.XrayImages)
    assert len(xrays.boxed) == 12 and all(r.boxes for r in xrays.boxed)
    assert len(xrays.reference) == 609 and not any(r.boxes for r in xrays.reference)
    assert (
        "621 NIH ChestX-ray14 images from the embedded 621-image subset (256 px): 12 with radiologist boxes"
        in (capsys.readouterr().out)
    )


def test_a_folder_of_boxed_xrays_is_its_own_reference(tmp_path, boxed):
    images = tmp_path / "images"
    images.mkdir()
    record = boxed[0]
    data.load_rgb(record.path).convert("L").save(images / record.name)
    finding = next(iter(record.boxes))
    x0, y0, x1, y1 = record.boxes[finding][0] * 4  # back to NIH's 1024 px
    (tmp_path / "labels.csv").write_text(f"Image Index,Finding Labels\n{record.name},{finding}\n")
    (tmp_path / "bbox.csv").write_text(
        f"Image Index,Finding Label,x,y,w,h\n{record.name},{finding},{x0},{y0},{x1 - x0},{y1 - y0}\n"
    )
    xrays = chest_xray.load_xrays(str(images), tmp_path / "labels.csv", tmp_path / "bbox.csv")
    assert [r.name for r in xrays.boxed] == [record.name] and xrays.reference == xrays.boxed
    np.testing.assert_allclose(xrays.boxed[0].boxes[finding], record.boxes[finding], rtol=1e-4)


def test_xray_rows_match_direct_computation(random_cxr_standin, boxed):
    model = random_cxr_standin
    records = boxed[:3]
    explainers = common.create_explainers(("grad-cam", "integrated-gradients"), model, ig_steps=4)
    run = chest_xray.run_xray_localization(model, records, explainers, n_examples=2, progress=False)
    assert isinstance(run, chest_xray.ChestXrayRun)
    table = run.table
    pairs = sum(len(r.boxes) for r in records)
    assert len(table) == pairs * 2 * 3 and run.skipped == []  # pairs x methods x thresholds
    assert run.describe() == f"{pairs} (image, finding) pairs, 0 unreadable images skipped"
    examples = run.examples
    assert isinstance(examples, chest_xray.XrayExamples)
    assert len(examples.images) == len(examples.titles) == len(examples.boxes) == 2
    assert set(examples.maps) == {"grad-cam", "integrated-gradients"} and len(examples.maps["grad-cam"]) == 2
    record = records[0]
    finding, boxes = next(iter(record.boxes.items()))
    x = model.preprocess([data.load_rgb(record.path)])
    heat = resize_to_image(GradCAM(model).attribute(x, data.NIH_FINDINGS.index(finding))[0], record.size)[0]
    row = table[
        (table["image"] == record.name)
        & (table["finding"] == finding)
        & (table["method"] == "grad-cam")
        & (table["threshold"] == 0.85)
    ]
    assert row["class_index"].item() == data.NIH_FINDINGS.index(finding)
    assert row["ratio_inside"].item() == pytest.approx(metrics.ratio_inside_box(heat, boxes, 0.85))
    assert row["pointing_hit"].item() == metrics.pointing_hit(heat, boxes, 0.0)
    box = metrics.threshold_box(heat, 0.85)
    assert row["iou"].item() == pytest.approx(metrics.box_iou(box, boxes).max() if box is not None else 0.0)
    assert row["box_fraction"].item() == pytest.approx(metrics.box_mask(heat.shape, boxes).mean())
    with torch.no_grad():
        probability = torch.sigmoid(model(x)[0, data.NIH_FINDINGS.index(finding)])
    assert row["probability"].item() == pytest.approx(float(probability), rel=1e-5)
    # the figure data of the first pair: the image, its box, the normalised map
    assert examples.titles[0] == f"{finding} ({record.name})"
    np.testing.assert_array_equal(examples.boxes[0], boxes)
    assert examples.images[0].shape == (*record.size[::-1], 3)
    expected = normalize_maps(torch.from_numpy(heat)).numpy()
    np.testing.assert_allclose(examples.maps["grad-cam"][0], expected, rtol=1e-5, atol=1e-6)


def test_xray_run_refuses_findings_the_model_lacks(squeezenet, boxed):
    with pytest.raises(ValueError, match="squeezenet1_1 has no output for finding"):
        chest_xray.run_xray_localization(
            squeezenet, boxed[:1], {"grad-cam": GradCAM(squeezenet)}, progress=False
        )


@pytest.fixture(scope="module")
def nih_full_size_folder(tmp_path_factory, boxed):
    """Full-profile layout: embedded boxed X-rays rescaled back to NIH's 1024 px."""
    folder = tmp_path_factory.mktemp("nih") / "images"
    folder.mkdir()
    for record in boxed[:2]:
        data.load_rgb(record.path).convert("L").resize((1024, 1024)).save(folder / record.name)
    return folder


def test_chexnet_full_profile_through_papermill_offline(nih_full_size_folder, tmp_path):
    """The torchxrayvision DenseNet-121 path of Task 5, with a locally created weights file (a
    random-weight model pickled as torchxrayvision ships it) and the package's NIH tables."""
    import torchxrayvision as xrv

    torch.manual_seed(0)
    weights = tmp_path / models.chexnet_weights_file().name
    torch.save(xrv.models.DenseNet(weights=None, num_classes=18), weights)
    out_dir = tmp_path / "results"
    params = {
        "model_name": "chexnet",
        "weights_path": str(weights),
        "data_source": str(nih_full_size_folder),
        "ig_steps": 2,
        "shap_samples": 2,
        "n_background": 2,
        "batch_size": 2,
        "device": "cpu",
        "output_dir": str(out_dir),
    }
    result = run_papermill("05_chest_xray", params, tmp_path / "out.ipynb")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out_dir / "xray_boxes.csv")
    assert set(table["model"]) == {"chexnet"} and table["image"].nunique() == 2
    names = models.chexnet_class_names()
    assert all(names[i] == f for i, f in zip(table["class_index"], table["finding"]))
    assert set(table["method"]) == set(XRAY_METHODS)
