"""Task 3 (:mod:`gradcam_core.tasks.occlusion`): rank correlations with the occlusion map on
real images checked against direct computation (pooling by hand in numpy), and the figure
data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcam_core import data, metrics
from gradcam_core.maps import normalize_maps
from gradcam_core.methods import GradCAM, Occlusion
from gradcam_core.tasks import occlusion
from tests.helpers import image_batch


def _block_mean(image_map: np.ndarray, resolution: int) -> np.ndarray:
    """Average pooling of an (H, W) map into resolution x resolution equal blocks, by hand."""
    h, w = image_map.shape
    return image_map.reshape(resolution, h // resolution, resolution, w // resolution).mean(axis=(1, 3))


def test_correlation_rows_match_direct_computation(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:2]
    settings = {"patch_size": 112, "stride": 56, "fill": 0.0}  # 3 x 3 windows: cheap
    run = occlusion.run_occlusion_correlation(
        squeezenet, records, rank_resolutions=(8, "full"), occlusion_batch=4, progress=False, **settings
    )
    assert isinstance(run, occlusion.OcclusionRun) and run.skipped == []
    table = run.table
    explainers = occlusion.compared_explainers(squeezenet)
    assert set(table["method"]) == set(explainers) == set(occlusion.COMPARED_METHODS)  # CAM applies
    assert len(table) == 2 * len(explainers) * 2 and set(table["resolution"]) == {"8", "full"}
    assert set(table["model"]) == {"squeezenet1_1"}
    assert dict(zip(table["image"], table["label"])) == {r.name: r.label for r in records}
    x = image_batch(squeezenet, records, 2)
    labels = torch.tensor([r.label for r in records])
    reference = Occlusion(squeezenet, **settings).attribute(x, labels)[:, 0].numpy()
    for method, explainer in explainers.items():
        maps = explainer.attribute(x, labels)[:, 0].detach().numpy()
        for i, record in enumerate(records):
            rows = table[(table["image"] == record.name) & (table["method"] == method)].set_index(
                "resolution"
            )
            expected = metrics.rank_correlation(_block_mean(maps[i], 8), _block_mean(reference[i], 8))
            assert rows.loc["8", "spearman"] == pytest.approx(expected, abs=1e-6), method
            expected = metrics.rank_correlation(maps[i], reference[i])
            assert rows.loc["full", "spearman"] == pytest.approx(expected, abs=1e-6), method


def test_occlusion_examples_are_normalised_maps_for_the_true_class(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:2]
    examples = occlusion.occlusion_examples(squeezenet, records, patch_size=112, stride=56, count=2)
    assert isinstance(examples, occlusion.OcclusionExamples)
    assert list(examples.maps) == ["occlusion", *occlusion.COMPARED_METHODS]
    assert examples.titles == [squeezenet.class_names[r.label] for r in records]
    pixels = squeezenet.spec.pixels(data.load_rgb(records[0].path)).permute(1, 2, 0).numpy()
    assert examples.images[0].shape == (224, 224, 3) and np.array_equal(examples.images[0], pixels)
    x = image_batch(squeezenet, records, 2)
    labels = torch.tensor([r.label for r in records])
    expected = normalize_maps(GradCAM(squeezenet).attribute(x, labels)[:, 0]).numpy()
    np.testing.assert_allclose(examples.maps["grad-cam"], expected, rtol=1e-5, atol=1e-6)
    for name, maps in examples.maps.items():
        assert maps.shape == (2, 224, 224) and maps.min() == 0.0 and maps.max() == 1.0, name
