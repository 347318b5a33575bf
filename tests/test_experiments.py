"""Task runners: results on small real inputs checked against direct computation, the full-size
val-folder code path, and the notebooks end to end through papermill on that layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gradcam_core import data, experiments, metrics
from gradcam_core.methods import GradCAM

ROOT = Path(__file__).resolve().parent.parent


def test_localization_rows_match_direct_computation(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:6]
    run = experiments.run_localization(
        squeezenet, records, thresholds=(0.15, 0.3), batch_size=4, backprop_images=2, progress=False
    )
    table = run.table
    assert run.skipped == [] and set(table["image"]) == {r.name for r in records}
    assert len(table[table["method"] == "backprop"]) == 2 * 2  # 2 images x 2 thresholds
    # recompute one image's Grad-CAM top-1 localisation by hand
    record = records[0]
    x = squeezenet.preprocess([data.load_rgb(record.path)])
    maps, classes, _ = GradCAM(squeezenet).attribute_top_k(x, 5)
    heat = experiments.maps_at_image_size(maps[0], record.size)
    box = metrics.threshold_box(heat[0], 0.15)
    expected = metrics.localization_correct(int(classes[0, 0]), box, record.label, record.boxes)
    row = table[
        (table["image"] == record.name) & (table["method"] == "grad-cam") & (table["threshold"] == 0.15)
    ]
    assert row["loc_top1"].item() == expected
    assert row["cls_top1"].item() == (int(classes[0, 0]) == record.label)
    # the full-image baseline by hand
    full = table[(table["image"] == record.name) & (table["method"] == "full-image")]
    iou = metrics.box_iou([[0, 0, *record.size]], record.boxes).max()
    assert full["loc_top1"].item() == bool(int(classes[0, 0]) == record.label and iou >= 0.5)


def test_unknown_localization_method_is_refused(squeezenet, ilsvrc_records):
    with pytest.raises(ValueError, match="unknown localisation method"):
        experiments.run_localization(squeezenet, ilsvrc_records[:1], methods=("lime",), progress=False)


def test_pointing_rows_cue_ground_truth_and_predictions(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:4]
    table = experiments.run_pointing_game(squeezenet, records, batch_size=4, progress=False).table
    gt = table[(table["method"] == "grad-cam") & table["is_gt"]]
    assert len(gt) == 4 and (gt["cue"] == gt["label"]).all()
    predicted = table[(table["method"] == "grad-cam") & (table["rank"] > 0)]
    assert predicted.groupby("image").size().eq(5).all()
    # the ground-truth hit by hand for the first image
    record = records[0]
    x = squeezenet.preprocess([data.load_rgb(record.path)])
    heat = experiments.maps_at_image_size(GradCAM(squeezenet).attribute(x, record.label)[0], record.size)[0]
    assert gt.iloc[0]["hit"] == metrics.pointing_hit(heat, record.boxes, 15.0)
    assert gt.iloc[0]["raw_max"] == pytest.approx(float(heat.max()), rel=1e-5)


def test_unreadable_image_is_skipped_and_counted(squeezenet, ilsvrc_records, tmp_path):
    bad = tmp_path / ilsvrc_records[1].name
    bad.write_bytes(b"truncated")
    records = [
        ilsvrc_records[0],
        data.ImageRecord(bad, ilsvrc_records[1].label, "x", ilsvrc_records[1].boxes, (227, 227)),
    ]
    run = experiments.run_localization(squeezenet, records, methods=("grad-cam",), progress=False)
    assert run.skipped == [str(bad)] and set(run.table["image"]) == {ilsvrc_records[0].name}


@pytest.fixture(scope="module")
def full_size_val_folder(tmp_path_factory, ilsvrc_records):
    """Official-layout val folder: embedded images rescaled back to their original sizes."""
    folder = tmp_path_factory.mktemp("val")
    _, sizes, _ = data.read_ilsvrc_boxes()
    for record in ilsvrc_records[:4]:
        data.load_rgb(record.path).resize(sizes[record.name]).save(folder / record.name, quality=95)
    return folder


def test_full_size_folder_runs_through_task_code(squeezenet, full_size_val_folder):
    records = data.load_ilsvrc_val(full_size_val_folder)
    assert all(r.size != (227, 227) for r in records)
    run = experiments.run_localization(
        squeezenet, records, methods=("grad-cam", "full-image"), progress=False
    )
    assert run.table["image"].nunique() == 4 and run.skipped == []
    full = run.table[run.table["method"] == "full-image"]
    for r, ok in zip(records, full["loc_top1"]):  # boxes in the full-size frame
        assert ok == bool(
            r.label == int(full[full["image"] == r.name]["top5"].item().split()[0])
            and metrics.box_iou([[0, 0, *r.size]], r.boxes).max() >= 0.5
        )


@pytest.mark.parametrize("notebook", ["01_localization", "02_pointing_game"])
def test_notebook_full_profile_code_path_through_papermill(notebook, full_size_val_folder, tmp_path):
    out_dir = tmp_path / "results"
    params = {
        "data_source": str(full_size_val_folder),
        "n_images": 3,
        "batch_size": 2,
        "device": "cpu",
        "output_dir": str(out_dir),
        "models": ["squeezenet1_1"],
    }
    if notebook == "01_localization":
        params["backprop_images"] = 1
    args = [
        str(Path(sys.executable).parent / "papermill"),
        "--cwd",
        str(ROOT / "notebooks"),
        str(ROOT / "notebooks" / f"{notebook}.ipynb"),
        str(tmp_path / "out.ipynb"),
        "-y",
        json.dumps(params),
    ]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out_dir / "per_image.csv")
    assert table["image"].nunique() == 3 and set(table["model"]) == {"squeezenet1_1"}


def test_only_requested_localization_methods_are_reported(squeezenet, ilsvrc_records):
    run = experiments.run_localization(
        squeezenet, ilsvrc_records[:2], methods=("cam", "centre-box"), progress=False
    )
    assert set(run.table["method"]) == {"cam", "centre-box"}


# ------------------------------------------------------------------------------ Task 5


@pytest.fixture(scope="module")
def random_cxr_standin(tmp_path_factory):
    """The X-ray stand-in's architecture with random weights, loaded through the registry."""
    from gradcam_core import models

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cxr") / "random.pt"
    torch.save({"state_dict": models.squeezenet_multilabel(len(data.NIH_FINDINGS), False).state_dict()}, path)
    return models.load_model("squeezenet1_1-cxr", weights_path=str(path), device="cpu")


def test_xray_rows_match_direct_computation(random_cxr_standin):
    model = random_cxr_standin
    boxed = [r for r in data.load_nih_cxr() if r.boxes][:3]
    run, examples = experiments.run_xray_localization(
        model, boxed, methods=("grad-cam", "integrated-gradients"), ig_steps=4, n_examples=2, progress=False
    )
    table = run.table
    assert len(table) == 3 * 2 * 3 and run.skipped == []  # pairs x methods x thresholds
    assert len(examples["images"]) == 2 and len(examples["maps"]["grad-cam"]) == 2
    record = boxed[0]
    finding, boxes = next(iter(record.boxes.items()))
    x = model.preprocess([data.load_rgb(record.path)])
    heat = experiments.maps_at_image_size(
        GradCAM(model).attribute(x, data.NIH_FINDINGS.index(finding))[0], record.size
    )[0]
    row = table[
        (table["image"] == record.name) & (table["method"] == "grad-cam") & (table["threshold"] == 0.85)
    ]
    assert row["ratio_inside"].item() == pytest.approx(metrics.ratio_inside_box(heat, boxes, 0.85))
    assert row["pointing_hit"].item() == metrics.pointing_hit(heat, boxes, 0.0)
    box = metrics.threshold_box(heat, 0.85)
    assert row["iou"].item() == pytest.approx(metrics.box_iou(box, boxes).max() if box is not None else 0.0)
    assert row["box_fraction"].item() == pytest.approx(metrics.box_mask(heat.shape, boxes).mean())


def test_xray_run_refuses_findings_the_model_lacks(squeezenet):
    boxed = [r for r in data.load_nih_cxr() if r.boxes][:1]
    with pytest.raises(ValueError, match="no output for finding"):
        experiments.run_xray_localization(squeezenet, boxed, methods=("grad-cam",), progress=False)


def test_gradient_shap_needs_a_background(random_cxr_standin):
    with pytest.raises(ValueError, match="background"):
        experiments.make_explainer("gradient-shap", random_cxr_standin)
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        experiments.make_explainer("lime", random_cxr_standin)


@pytest.fixture(scope="module")
def nih_full_size_folder(tmp_path_factory):
    """Full-profile layout: embedded boxed X-rays rescaled back to NIH's 1024 px."""
    folder = tmp_path_factory.mktemp("nih") / "images"
    folder.mkdir()
    for record in [r for r in data.load_nih_cxr() if r.boxes][:2]:
        data.load_rgb(record.path).convert("L").resize((1024, 1024)).save(folder / record.name)
    return folder


def test_chexnet_full_profile_through_papermill_offline(nih_full_size_folder, tmp_path):
    """The torchxrayvision DenseNet-121 path of Task 5, with a locally created weights file (a
    random-weight model pickled as torchxrayvision ships it) and the package's NIH tables."""
    import torchxrayvision as xrv

    from gradcam_core import models

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
    args = [
        str(Path(sys.executable).parent / "papermill"),
        "--cwd",
        str(ROOT / "notebooks"),
        str(ROOT / "notebooks" / "05_chest_xray.ipynb"),
        str(tmp_path / "out.ipynb"),
        "-y",
        json.dumps(params),
    ]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out_dir / "xray_boxes.csv")
    assert set(table["model"]) == {"chexnet"} and table["image"].nunique() == 2
    names = models.chexnet_class_names()
    assert all(names[i] == f for i, f in zip(table["class_index"], table["finding"]))
    assert set(table["method"]) == set(experiments.XRAY_METHODS)


# ------------------------------------------------------------------------------ Task 7


def test_fidelity_rows_match_direct_computation():
    from gradcam_core import methods, models, training

    torch.manual_seed(0)
    module = training.architecture("mnist-cnn")
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "random.pt"
    torch.save({"state_dict": module.state_dict()}, path)
    model = models.load_model("mnist-cnn", weights_path=str(path), device="cpu")
    train, test = training.mnist_splits(8000)
    images, labels = test.images[:6], test.labels[:6]
    background = train.images[:4]
    run = experiments.run_fidelity_contrastivity(
        model,
        images,
        labels,
        methods=("grad-cam", "shap"),
        thresholds=(0.1,),
        background=background,
        shap_samples=4,
        batch_size=4,
        progress=False,
    )
    table = run.table
    assert len(table) == 6 * 2 and set(table["index"]) == set(range(6))
    x = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        top2 = model(x).topk(2, dim=1).indices
    saliency = experiments.saliency_maps(methods.GradCAM(model), x, top2)
    masks = metrics.salient(saliency, 0.1)
    with torch.no_grad():
        after = model(torch.where(masks[:, :1], torch.zeros_like(x), x)).argmax(1)
    rows = table[table["method"] == "grad-cam"].sort_values("index")
    assert rows["correct_after"].tolist() == (after == labels).tolist()
    assert rows["correct_before"].tolist() == (top2[:, 0] == labels).tolist()
    expected = metrics.contrastivity(masks[:, 0].numpy(), masks[:, 1].numpy())
    np.testing.assert_allclose(rows["contrastivity"].to_numpy(), expected)
    np.testing.assert_allclose(rows["occluded_fraction"].to_numpy(), masks[:, 0].float().mean((1, 2)).numpy())
    again = experiments.run_fidelity_contrastivity(
        model,
        images,
        labels,
        methods=("grad-cam", "shap"),
        thresholds=(0.1,),
        background=background,
        shap_samples=4,
        batch_size=4,
        progress=False,
    )
    pd.testing.assert_frame_equal(table, again.table)  # seeded: random masks and SHAP alike


def test_notebook_run_twice_gives_byte_identical_results(tmp_path):
    """Determinism: the same notebook and parameters on the CPU write the same results bytes
    (run_times.csv, wall times, excepted)."""
    outputs = []
    for attempt in ("first", "second"):
        out_dir = tmp_path / attempt
        params = {
            "n_images": 12,
            "batch_size": 4,
            "device": "cpu",
            "output_dir": str(out_dir),
            "models": ["squeezenet1_1"],
        }
        args = [
            str(Path(sys.executable).parent / "papermill"),
            "--cwd",
            str(ROOT / "notebooks"),
            str(ROOT / "notebooks" / "02_pointing_game.ipynb"),
            str(tmp_path / f"{attempt}.ipynb"),
            "-y",
            json.dumps(params),
        ]
        result = subprocess.run(args, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(
            {p.name: p.read_bytes() for p in sorted(out_dir.glob("*.csv")) if p.name != "run_times.csv"}
        )
    assert outputs[0] and outputs[0] == outputs[1]
