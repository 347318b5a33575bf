"""Task 2 (:mod:`gradcam_core.tasks.pointing`): rows on small real inputs checked against direct
computation, the centre-point baseline by hand, and the notebook through papermill (full-size
layout, and twice for byte-identical results)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcam_core import data, methods, metrics
from gradcam_core.maps import resize_to_image
from gradcam_core.methods import GradCAM
from gradcam_core.tasks import pointing
from tests.helpers import run_full_profile_notebook, run_papermill


def test_centre_point_map_peaks_at_the_centre_pixel_only():
    centre = pointing.centre_point_map((5, 4))  # width 5, height 4
    assert centre.shape == (4, 5) and centre.sum() == 1.0 and centre[2, 2] == 1.0
    assert metrics.map_peak(centre) == (2.5, 2.5)
    assert metrics.map_peak(pointing.centre_point_map((227, 227))) == (113.5, 113.5)


def test_pointing_rows_cue_ground_truth_and_predictions(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:4]
    run = pointing.run_pointing_game(squeezenet, records, batch_size=4, methods_on="all", progress=False)
    table = run.table
    assert isinstance(run, pointing.PointingRun) and run.skipped == []
    gt = table[(table["method"] == "grad-cam") & table["is_gt"]]
    assert len(gt) == 4 and (gt["cue"] == gt["label"]).all()
    predicted = table[(table["method"] == "grad-cam") & (table["rank"] > 0)]
    assert predicted.groupby("image").size().eq(5).all()
    assert not table[(table["method"] == "grad-cam") & ~table["is_gt"]]["hit"].any()  # absent: no hit
    # coverage and the difficult flag by hand, the same on every row of an image
    for r in records:
        rows = table[table["image"] == r.name]
        coverage = metrics.box_mask(r.size[::-1], r.boxes).mean()
        assert rows["coverage"].eq(round(coverage, 4)).all()
        assert rows["difficult"].eq(coverage < 0.25).all()
    # the ground-truth hit by hand for the first image, 15 px of the ORIGINAL image
    record = records[0]
    scale = (record.original_size[0] / record.size[0], record.original_size[1] / record.size[1])
    assert scale != (1.0, 1.0)  # the embedded images are resized originals
    x = squeezenet.preprocess([data.load_rgb(record.path)])
    heat = resize_to_image(GradCAM(squeezenet).attribute(x, record.label)[0], record.size)[0]
    distance = metrics.point_box_distance(metrics.map_peak(heat), record.boxes, scale).min()
    assert gt.iloc[0]["hit"] == (distance <= 15.0)
    assert gt.iloc[0]["raw_max"] == pytest.approx(float(heat.max()), rel=1e-5)
    # c-MWP cued with the ground truth, by hand
    cmwp = table[table["method"] == "c-mwp"].set_index("image")
    assert len(cmwp) == 4 and cmwp["is_gt"].all()
    cmwp_heat = resize_to_image(
        methods.create("c-mwp", squeezenet).attribute(x, record.label)[0], record.size
    )[0]
    assert cmwp.loc[record.name, "hit"] == metrics.pointing_hit(cmwp_heat, record.boxes, 15.0, scale)
    # the predictions' ranks and raw maxima by hand
    with torch.no_grad():
        top5 = squeezenet(x).topk(5, dim=1).indices[0].tolist()
    mine = table[(table["image"] == record.name) & (table["method"] == "grad-cam") & (table["rank"] > 0)]
    assert dict(zip(mine["cue"], mine["rank"])) == {c: r for r, c in enumerate(top5, start=1)}
    second = resize_to_image(GradCAM(squeezenet).attribute(x, top5[1])[0], record.size)[0]
    assert mine[mine["rank"] == 2]["raw_max"].item() == pytest.approx(float(second.max()), rel=1e-5)
    # the centre-point baseline: one row per image, by hand
    centre = table[table["method"] == "centre"].set_index("image")
    assert len(centre) == 4 and centre["is_gt"].all() and (centre["rank"] == 0).all()
    assert centre["raw_max"].isna().all()
    for r in records:
        w, h = r.size
        distance = metrics.point_box_distance((w // 2 + 0.5, h // 2 + 0.5), r.boxes, r.pixel_scale).min()
        assert centre.loc[r.name, "hit"] == (distance <= 15.0)


def test_ground_truth_methods_run_on_the_difficult_images_only_by_default(squeezenet, ilsvrc_records):
    table = pointing.run_pointing_game(squeezenet, ilsvrc_records[:8], batch_size=8, progress=False).table
    cmwp = table[table["method"] == "c-mwp"]
    difficult = set(table.loc[table["difficult"], "image"])
    assert set(cmwp["image"]) == difficult and 0 < len(difficult) < 8
    with pytest.raises(ValueError, match="methods_on must be"):
        pointing.run_pointing_game(squeezenet, ilsvrc_records[:1], methods_on="some", progress=False)
    with pytest.raises(ValueError, match="unknown pointing-game method"):
        pointing.run_pointing_game(squeezenet, ilsvrc_records[:1], methods=("lime",), progress=False)


def test_tolerance_zero_is_never_more_lenient(squeezenet, ilsvrc_records):
    records = ilsvrc_records[20:24]
    lenient = pointing.run_pointing_game(squeezenet, records, batch_size=4, progress=False).table
    strict = pointing.run_pointing_game(
        squeezenet, records, batch_size=4, tolerance=0.0, progress=False
    ).table
    assert (strict["hit"] <= lenient["hit"]).all()
    np.testing.assert_allclose(strict["raw_max"], lenient["raw_max"])


def test_notebook_full_profile_code_path_through_papermill(full_size_val_folder, tmp_path):
    table = run_full_profile_notebook("02_pointing_game", full_size_val_folder, tmp_path)
    assert table["image"].nunique() == 3 and set(table["model"]) == {"squeezenet1_1"}


def test_notebook_run_twice_through_papermill_gives_byte_identical_results(tmp_path):
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
            "model_names": ["squeezenet1_1"],
        }
        result = run_papermill("02_pointing_game", params, tmp_path / f"{attempt}.ipynb")
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(
            {p.name: p.read_bytes() for p in sorted(out_dir.glob("*.csv")) if p.name != "run_times.csv"}
        )
    assert outputs[0] and outputs[0] == outputs[1]
