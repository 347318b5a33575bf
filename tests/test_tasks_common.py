"""What the task runners share (:mod:`gradcam_core.tasks.common`): the result type, batched
loading that skips bad images, precision, the choice of correctly classified images and of a
background batch, the explainers of Tasks 5 and 7, and running or reading a task's table."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from gradcam_core import data, methods
from gradcam_core.tasks import common
from tests.helpers import image_batch


def test_task_run_defaults_and_model_column(squeezenet):
    run = common.TaskRun(pd.DataFrame())
    assert run.skipped == [] and run.seconds == 0.0
    table = common.with_model_column([{"image": "a", "x": 1}, {"image": "b", "x": 2}], squeezenet)
    assert list(table.columns) == ["model", "image", "x"] and set(table["model"]) == {"squeezenet1_1"}
    assert common.with_model_column([], squeezenet).empty and "model" not in common.with_model_column(
        [], squeezenet
    )


def test_autocast_precisions():
    assert {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16} == common.PRECISIONS
    cpu = torch.device("cpu")
    assert isinstance(common.autocast(cpu, "fp32"), contextlib.nullcontext)
    a, b = torch.rand(4, 4), torch.rand(4, 4)
    with common.autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with common.autocast(cpu):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16; got 'fp8'"):
        common.autocast(cpu, "fp8")


def test_image_batches_skip_and_list_unreadable_images(squeezenet, ilsvrc_records, tmp_path):
    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(b"not an image")
    records = [*ilsvrc_records[:3], data.ImageRecord(bad, 0, "x", ilsvrc_records[0].boxes, (227, 227))]
    records.append(ilsvrc_records[3])
    batches = common.ImageBatches(squeezenet, records, "test", batch_size=2, progress=False)
    seen = list(batches)
    assert [indices for _, indices in seen] == [[0, 1], [2], [4]]
    assert batches.skipped == [str(bad)]
    images, _ = seen[0]
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(images, image_batch(squeezenet, ilsvrc_records, 2))
    assert torch.allclose(seen[2][0], image_batch(squeezenet, ilsvrc_records, 1, start=3))


def test_load_ilsvrc_says_what_it_loaded(capsys):
    records = common.load_ilsvrc("embedded", 5, ["squeezenet1_1", "mobilenet_v1_0.75"])
    assert len(records) == 5 and records[0].name == "ILSVRC2012_val_00000347.JPEG"
    assert capsys.readouterr().out == (
        "5 ILSVRC2012 val images from the embedded 1,300-image subset (227 px full frames); "
        "models: squeezenet1_1, mobilenet_v1_0.75\n"
    )


def test_correctly_classified_first_or_least_confident(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:24]
    with torch.no_grad():
        probs = F.softmax(squeezenet(image_batch(squeezenet, records, 24)), dim=1)
    top2 = probs.topk(2, dim=1)
    right = [i for i, r in enumerate(records) if int(top2.indices[i, 0]) == r.label]
    assert len(right) >= 6
    first = common.correctly_classified(squeezenet, records, 4, batch_size=5)
    assert [r.name for r in first] == [records[i].name for i in right[:4]]
    margins = {i: float(top2.values[i, 0] - top2.values[i, 1]) for i in right}
    least = sorted(right, key=lambda i: margins[i])[:4]
    chosen = common.correctly_classified(squeezenet, records, 4, batch_size=5, least_confident=True)
    assert [r.name for r in chosen] == [records[i].name for i in least]
    assert len(common.correctly_classified(squeezenet, records, 100)) == len(right)


def test_background_batch_is_a_seeded_draw(squeezenet, ilsvrc_records, tmp_path):
    records = ilsvrc_records[:10]
    batch = common.background_batch(squeezenet, records, 3, seed=4)
    order = np.random.default_rng(4).permutation(10)[:3]
    expected = squeezenet.preprocess([data.load_rgb(records[i].path) for i in order])
    assert batch.shape == (3, 3, 224, 224) and torch.allclose(batch, expected)
    assert torch.equal(batch, common.background_batch(squeezenet, records, 3, seed=4))
    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(b"")
    with_bad = [data.ImageRecord(bad, 0, "x", records[0].boxes, (227, 227)), *records[1:]]
    reduced = common.background_batch(squeezenet, with_bad, 10, seed=0)
    assert reduced.shape[0] == 9  # the unreadable image is left out


def test_create_explainers_with_the_tasks_settings(squeezenet):
    background = torch.zeros(2, 3, 224, 224)
    names = ("grad-cam", "grad-cam++", "integrated-gradients", "gradient-shap", "shap-gradient-explainer")
    explainers = common.create_explainers(
        names, squeezenet, background=background, ig_steps=7, shap_samples=5, seed=3
    )
    assert list(explainers) == list(names)
    assert all(type(explainers[n]) is methods.METHODS[n] for n in names)
    assert explainers["integrated-gradients"].n_steps == 7
    for name in ("gradient-shap", "shap-gradient-explainer"):
        shap = explainers[name]
        assert shap.background is background and (shap.n_samples, shap.seed, shap.stdevs) == (5, 3, 0.0)
    defaults = common.create_explainers(["integrated-gradients"], squeezenet)["integrated-gradients"]
    assert defaults.n_steps == 32


@pytest.mark.parametrize("name", ["gradient-shap", "shap-gradient-explainer"])
def test_shap_explainers_need_a_background(squeezenet, name):
    with pytest.raises(ValueError, match=f"method '{name}' needs the setting\\(s\\) \\['background'\\]"):
        common.create_explainers(["grad-cam", name], squeezenet)


def test_unknown_explainer_name_is_refused(squeezenet):
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        common.create_explainers(["lime"], squeezenet)


def test_run_or_read_runs_every_model_or_reads_the_merged_table(ilsvrc_records, tmp_path, capsys):
    calls = []

    def run_task(model, records, **options):
        calls.append((model.name, len(records), options))
        table = pd.DataFrame({"model": model.name, "image": [r.name for r in records], "x": 1.5})
        return common.TaskRun(table, ["gone.JPEG"], 2.0)

    records = ilsvrc_records[:3]
    table, runs = common.run_or_read(
        run_task, ["squeezenet1_1"], records, tmp_path / "out.csv", device="cpu", batch_size=2
    )
    assert calls == [("squeezenet1_1", 3, {"batch_size": 2})] and list(runs) == ["squeezenet1_1"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out.csv"), table)
    assert (
        "squeezenet1_1: 3 images evaluated, 1 unreadable images skipped: gone.JPEG" in capsys.readouterr().out
    )
    read, none = common.run_or_read(
        run_task, ["squeezenet1_1"], records, tmp_path / "again.csv", per_image_csv=tmp_path / "out.csv"
    )
    assert none == {} and len(calls) == 1  # nothing run
    pd.testing.assert_frame_equal(read, table)
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()


def test_map_examples_fields():
    images, maps = [np.zeros((4, 4, 3))], {"grad-cam": np.ones((1, 4, 4))}
    examples = common.MapExamples(images, maps, ["canoe"])
    assert list(common.MapExamples.__dataclass_fields__) == ["images", "maps", "titles"]
    assert examples.images is images and examples.maps is maps and examples.titles == ["canoe"]


def test_attribute_all_shares_one_forward_among_the_cam_family(squeezenet, ilsvrc_records, monkeypatch):
    images = image_batch(squeezenet, ilsvrc_records, 2)
    with torch.no_grad():
        classes = squeezenet(images).topk(2, dim=1).indices  # (N, K) = (2, 2)
    names = ("grad-cam", "grad-cam++", "hirescam", "layer-cam", "backprop")
    explainers = common.create_explainers(names, squeezenet)
    expected = {name: explainers[name].attribute(images, classes) for name in names}
    forwards = []
    original = methods.ClassActivationMapping.forward

    def counted(self, x):
        forwards.append(self.layer_name)
        return original(self, x)

    monkeypatch.setattr(methods.ClassActivationMapping, "forward", counted)
    maps = common.attribute_all(explainers, images, classes)
    assert forwards == ["features.12"]  # one forward pass for the four CAM members
    assert list(maps) == list(names)
    for name in names:
        assert maps[name].shape == (2, 2, 224, 224)
        assert torch.equal(maps[name], expected[name]), name
    assert not torch.equal(maps["grad-cam"], maps["layer-cam"])  # different members, different maps
    # members on another layer get a forward pass of their own
    other = {"grad-cam": explainers["grad-cam"], "early": methods.GradCAM(squeezenet, layer="features.9")}
    forwards.clear()
    early = common.attribute_all(other, images, classes)
    assert forwards == ["features.12", "features.9"]
    torch.testing.assert_close(early["early"], other["early"].attribute(images, classes), rtol=0, atol=1e-6)
