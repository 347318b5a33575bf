"""The catalogue of bad inputs, one row per (entry point, case), each with its exact behaviour:
an error of a named type whose message names the thing at fault, or a counted skip with the
file listed in the run's report. Nothing is dropped silently and no results file is left half
written (``results.write_table`` and the runner write through a temporary file and a rename).

Image decoding cases in detail (CMYK, RGBA, 16-bit, grayscale conversions) are also in
``test_data.py``; this file lists every entry point in one place.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gradcam_core import data, maps, methods, metrics, models, results, runner, standins, study, training
from gradcam_core.tasks import chest_xray, common, localization, pointing
from tests.helpers import random_standin, run_papermill

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ bad image files


def _write(kind: str, folder: Path) -> Path:
    path = (
        folder
        / {
            "corrupt": "corrupt.jpg",
            "truncated": "truncated.png",
            "zero-byte": "empty.jpg",
            "missing": "missing.jpg",
            "huge": "huge.png",
            "float": "float.tif",
        }[kind]
    )
    if kind == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    elif kind == "truncated":
        Image.new("RGB", (64, 64), (10, 200, 30)).save(path)
        path.write_bytes(path.read_bytes()[:60])
    elif kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "huge":  # 400 megapixels, over twice PIL's decompression-bomb limit, 60 kB on disk
        Image.new("1", (20000, 20000)).save(path)
    elif kind == "float":
        Image.fromarray(np.zeros((4, 4), np.float32), mode="F").save(path)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("corrupt", "cannot read image"),
        ("truncated", "cannot read image"),
        ("zero-byte", "cannot read image"),
        ("missing", "no such image file"),
        ("huge", "DecompressionBomb"),
        ("float", "floating-point"),
    ],
)
def test_unreadable_image_files_name_the_file(tmp_path, kind, message):
    path = _write(kind, tmp_path)
    with pytest.raises(data.ImageLoadError, match=message) as err:
        data.load_rgb(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "L", "I;16", "P"])
def test_convertible_image_modes_load_as_8bit_rgb(tmp_path, mode):
    image = Image.new(mode, (8, 6))
    path = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    loaded = data.load_rgb(path)
    assert loaded.mode == "RGB" and loaded.size == (8, 6)


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "zero-byte", "missing"])
def test_a_run_skips_counts_and_lists_a_bad_image(squeezenet, ilsvrc_records, tmp_path, kind):
    bad = _write(kind, tmp_path)
    records = [ilsvrc_records[0], data.ImageRecord(bad, 1, "x", ilsvrc_records[0].boxes, (227, 227))]
    for task in (localization.run_localization, pointing.run_pointing_game):
        run = task(squeezenet, records, progress=False)
        assert run.skipped == [str(bad)] and set(run.table["image"]) == {ilsvrc_records[0].name}


def test_a_bad_xray_is_skipped_and_listed(tmp_path):
    boxed = [r for r in data.load_nih_cxr() if r.boxes][:2]
    bad = _write("truncated", tmp_path)
    records = [boxed[0], data.XrayRecord(bad, boxed[1].findings, boxed[1].boxes, boxed[1].size)]
    model = random_standin("squeezenet1_1-cxr", tmp_path)
    run = chest_xray.run_xray_localization(
        model, records, {"grad-cam": methods.GradCAM(model)}, progress=False
    )
    assert run.skipped == [str(bad)] and set(run.table["image"]) == {boxed[0].name}


# ------------------------------------------------------------------------------ box and table files


def _boxes_dir(tmp_path: Path, localization: str) -> Path:
    source = data.fetch_group("ilsvrc2012_val_boxes")
    folder = tmp_path / "boxes"
    folder.mkdir()
    for name in ("class_labels.txt", "image_sizes.txt"):
        (folder / name).write_bytes((source / name).read_bytes())
    (folder / "localization.txt").write_text(localization)
    return folder


@pytest.mark.parametrize(
    "localization, message",
    [
        ("val/ILSVRC2012_val_00000001.JPEG, 1, 2, 3\n", "malformed line 1"),
        ("val/ILSVRC2012_val_00000001.JPEG, a, 2, 3, 4\n", "must be numbers"),
        (
            "val/ILSVRC2012_val_00000001.JPEG, 50, 2, 10, 4\n",
            r"line 1 \(ILSVRC2012_val_00000001.JPEG\) is not a box",
        ),
        ("val/ILSVRC2012_val_00000001.JPEG, 1, 2, inf, 4\n", "is not a box"),
        ("", "malformed"),
    ],
)
def test_malformed_box_files_name_the_file_and_line(tmp_path, localization, message):
    folder = _boxes_dir(tmp_path, localization)
    with pytest.raises(data.DataFileError, match=message) as err:
        data.read_ilsvrc_boxes(folder)
    assert "localization.txt" in str(err.value)


def test_missing_box_file_is_named(tmp_path):
    folder = _boxes_dir(tmp_path, "")
    (folder / "image_sizes.txt").unlink()
    with pytest.raises(data.DataFileError, match="image_sizes.txt: metadata file is missing"):
        data.read_ilsvrc_boxes(folder)


def test_boxes_past_the_border_are_clipped_and_boxes_outside_refused():
    clipped = data.clip_boxes([[-3, 5, 230, 100]], (227, 227), "x.JPEG")
    assert clipped.tolist() == [[0, 5, 227, 100]]
    with pytest.raises(
        data.DataFileError, match=r"x.JPEG: box \[300.0, 5.0, 400.0, 100.0\] lies outside the 227x227"
    ):
        data.clip_boxes([[300, 5, 400, 100]], (227, 227), "x.JPEG")


def test_nih_box_outside_the_image_is_named(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("L", (64, 64)).save(images / "a.png")
    (tmp_path / "labels.csv").write_text("Image Index,Finding Labels\na.png,Mass\n")
    (tmp_path / "bbox.csv").write_text("Image Index,Finding Label,x,y,w,h\na.png,Mass,2000,2000,10,10\n")
    with pytest.raises(data.DataFileError, match=r"bbox.csv \(a.png\): box .* lies outside"):
        data.load_nih_cxr(
            image_dir=images, labels_csv=tmp_path / "labels.csv", bbox_csv=tmp_path / "bbox.csv"
        )


def test_responses_file_with_a_bad_rating_is_named(tmp_path):
    path = tmp_path / "responses.csv"
    path.write_text("rater,stimulus,method,left_model,right_model,rating\na,s1,guided-backprop,a,b,x\n")
    with pytest.raises(study.StudyError, match="responses.csv: rating x outside"):
        study.read_responses(path)


# ------------------------------------------------------------------------------ registry, methods, metrics


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda m: models.load_model("vgg19"),
            models.UnknownModelError,
            "unknown model 'vgg19'; known models:",
        ),
        (
            lambda m: models.get_layer(m.module, "features.99"),
            models.UnknownLayerError,
            "unknown layer 'features.99'",
        ),
        (lambda m: methods.GradCAM(m, layer="nope"), models.UnknownLayerError, "unknown layer 'nope'"),
        (
            lambda m: methods.GradCAM(m).attribute(torch.zeros(1, 3, 224, 224), 1000),
            ValueError,
            "class index 1000 out of range: the model has 1000 classes",
        ),
        (
            lambda m: methods.GradCAM(m).attribute(torch.zeros(2, 3, 224, 224), [[1], [2], [3]]),
            ValueError,
            r"target must be .* got shape \(3, 1\)",
        ),
        (lambda m: methods.create("lime", m), ValueError, "unknown method 'lime'"),
        (
            lambda m: methods.create("grad-cam", m, steps=3),
            ValueError,
            r"method 'grad-cam' has no setting\(s\)",
        ),
        (
            lambda m: methods.Occlusion(m, patch_size=300).attribute(torch.zeros(1, 3, 224, 224), 1),
            ValueError,
            "patch_size 300 exceeds the image size",
        ),
        (lambda m: methods.Occlusion(m, patch_size=10, stride=20), ValueError, "leaves pixels unoccluded"),
        (
            lambda m: methods.create("gradient-shap", m),
            ValueError,
            r"needs the setting\(s\) \['background'\]",
        ),
        (
            lambda m: common.create_explainers(["gradient-shap"], m),
            ValueError,
            r"needs the setting\(s\) \[.background.\]",
        ),
        (
            lambda m: localization.run_localization(m, [], methods=("lime",)),
            ValueError,
            "unknown localisation method",
        ),
        (lambda m: common.autocast(torch.device("cpu"), "fp8"), ValueError, "precision must be one of"),
        (lambda m: training.load_standin("vgg16"), ValueError, "is not a stand-in trained here"),
        (lambda m: standins.architecture("vgg16"), ValueError, "no stand-in architecture 'vgg16'"),
        (
            lambda m: models.load_model("mnist-cnn", weights_path="/nonexistent/w.pt"),
            data.WeightsUnavailableError,
            "checkpoint /nonexistent/w.pt does not exist",
        ),
    ],
    ids=[
        "model",
        "layer",
        "explainer-layer",
        "class",
        "target-shape",
        "method",
        "setting",
        "patch",
        "stride",
        "background",
        "task-background",
        "loc-method",
        "precision",
        "stand-in",
        "architecture",
        "checkpoint",
    ],
)
def test_registry_and_method_errors_name_the_thing(squeezenet, call, error, message):
    with pytest.raises(error, match=message):
        call(squeezenet)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_maps_is_refused_everywhere(bad):
    heat = np.ones((8, 8))
    heat[2, 3] = bad
    boxes = [[0, 0, 4, 4]]
    with pytest.raises(ValueError, match="NaN or inf"):
        maps.normalize_maps(torch.from_numpy(heat))
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.threshold_box(heat, 0.15)
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.ratio_inside_box(heat, boxes)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.threshold_box(np.ones((4, 4)), 0.0), "threshold must be in"),
        (lambda: metrics.threshold_box(np.ones((4, 4)), 1.5), "threshold must be in"),
        (lambda: metrics.mask_above_level(torch.ones(2, 2), -0.1), "threshold must be in"),
        (lambda: metrics.mask_at_fraction_of_max(np.ones((2, 2)), 0.0), "threshold must be in"),
        (lambda: metrics.class_accuracies([True], [1, 2]), "need equally long, non-empty hits and classes"),
        (lambda: metrics.pointing_hit(np.ones((4, 4)), []), "needs at least one ground-truth box"),
        (lambda: metrics.rank_correlation(np.ones((4, 4)), np.ones((5, 5))), "maps differ in size"),
        (lambda: metrics.fidelity([True], []), "equally long"),
        (lambda: metrics.contrastivity(np.ones((2, 2)), np.ones((3, 3))), "masks differ in shape"),
        (lambda: data.load_ilsvrc_val(n_images=0), "n_images must be >= 1"),
        (lambda: data.load_cifar10("validation"), "split must be 'train' or 'test'"),
        (lambda: training.mnist_splits(0), "n_train must be between"),
        (lambda: training.xray_splits(1.5), "held_out_fraction must be in"),
        (lambda: runner.shard_positions(10, 4, 4), "shard_index must be an integer in 0..3"),
        (lambda: runner.shard_positions(10, 0, 1.5), "num_shards must be an integer"),
    ],
)
def test_parameter_ranges_and_types_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_results_files_are_never_half_written(tmp_path, monkeypatch):
    target = tmp_path / "per_image.csv"
    results.write_table(pd.DataFrame({"a": [1]}), target)

    class Boom(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            args[0].write("a\n2\n")  # half of the rows, then the process fails
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        results.write_table(Boom({"a": [2, 3]}), target)
    assert target.read_text() == "a\n1\n" and [p.name for p in tmp_path.iterdir()] == ["per_image.csv"]


# ------------------------------------------------------------------------------ notebooks and command lines


def test_notebook_parameter_out_of_range_through_papermill_fails_naming_it(tmp_path):
    params = {"n_images": -5, "output_dir": str(tmp_path / "results")}
    result = run_papermill("02_pointing_game", params, tmp_path / "out.ipynb")
    assert result.returncode != 0 and "n_images must be >= 1, got -5" in result.stderr
    assert not (tmp_path / "results" / "per_image.csv").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-m", "gradcam_core.data", "fetch", "imagenet21k"], "unknown data group(s) ['imagenet21k']"),
        (["-m", "gradcam_core.study", "serve", "/nonexistent/study"], "study.json: missing"),
        (
            ["-m", "gradcam_core.study", "export", "--db", "/nonexistent/r.sqlite"],
            "no such responses database",
        ),
        (["-m", "gradcam_core.runner", "merge", "/nonexistent/run", "--out", "x.csv"], "no shard folders"),
    ],
)
def test_command_lines_exit_2_with_a_message(argv, message):
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
