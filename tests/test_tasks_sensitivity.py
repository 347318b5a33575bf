"""Task 6 (:mod:`gradcam_core.tasks.sensitivity`) on a tiny hand-made network whose Grad-CAM
has a closed form: one channel ``A = ReLU(mean of the colour channels)`` feeds both classes, so
each class's normalised Grad-CAM map is the normalised ``A`` wherever its channel weight is
positive. Class 0 scores ``5 * mean(A) + 3``; class 1 scores ``10 * A[2, 3]``, so brightening
the pixel (row 2, column 3) of a black image flips the prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats
from torch import nn

from gradcam_core import attacks, data
from gradcam_core.tasks import sensitivity
from tests.helpers import loaded_module

SIZE = 5


class _TriggerNet(nn.Module):
    def __init__(self):
        super().__init__()
        mean = nn.Conv2d(3, 1, 1, bias=False)
        mean.weight.data.fill_(1 / 3)
        self.features = nn.Sequential(mean, nn.ReLU())

    def forward(self, x):
        a = self.features(x)[:, 0]
        return torch.stack([5 * a.mean(dim=(1, 2)) + 3, 10 * a[:, 2, 3]], dim=1)


@pytest.fixture(scope="module")
def trigger_model():
    return loaded_module(_TriggerNet(), ["dark", "bright"], target_layer="features.1", input_size=SIZE)


def _record(folder, name, array, label, boxes=((0, 0, 2, 2),)):
    path = folder / name
    Image.fromarray(array).save(path)
    return data.ImageRecord(path, label, "", np.array(boxes, np.float32), (SIZE, SIZE))


def _normalised_a(model, pixels: torch.Tensor) -> np.ndarray:
    """The closed form: the network's channel ``A`` for [0, 1] pixels (N, 3, H, W), min-max
    normalised per image (in float32, as the maps are: ties stay ties)."""
    with torch.no_grad():
        a = model.module.features(pixels)[:, 0].numpy()
    low = a.min(axis=(1, 2), keepdims=True)
    span = a.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (a - low) / np.where(span > 0, span, 1), 0.0)


def test_normalized_gradcam_is_the_closed_form(trigger_model):
    pixels = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    gradcam = sensitivity.GradCAM(trigger_model)
    maps = sensitivity.normalized_gradcam(gradcam, trigger_model, pixels, torch.tensor([[0, 1]] * 3))
    assert maps.shape == (3, 2, SIZE, SIZE) and isinstance(maps, np.ndarray)
    for k in range(2):
        np.testing.assert_allclose(maps[:, k], _normalised_a(trigger_model, pixels), atol=1e-6)


def test_one_pixel_run_finds_the_trigger_and_reads_the_maps(trigger_model, tmp_path):
    dark = _record(tmp_path, "dark.png", np.zeros((SIZE, SIZE, 3), np.uint8), 0)
    run = sensitivity.run_one_pixel_sensitivity(
        trigger_model, [dark], population=50, max_iterations=30, seed=0, progress=False
    )
    assert isinstance(run, sensitivity.OnePixelRun) and run.skipped == [] and run.seconds > 0
    row = run.table.iloc[0]
    assert row["model"] == "tiny" and row["image"] == "dark.png" and row["label"] == 0
    assert bool(row["success"]) and (row["x"], row["y"]) == (3, 2) and row["adversarial_class"] == 1
    assert row["evaluations"] >= 50
    # before: A is 0 everywhere, a constant map normalises to 0; after: A peaks at the pixel
    assert row["before"] == 0.0 and row["after"] == 1.0
    (case,) = run.cases
    assert isinstance(case, sensitivity.OnePixelCase)
    assert case.xy == (3, 2) and case.title == "dark -> bright"
    assert case.image.shape == (SIZE, SIZE, 3) and not case.image.any()
    assert not case.before.any()
    expected_after = np.zeros((SIZE, SIZE))
    expected_after[2, 3] = 1.0
    np.testing.assert_allclose(case.after, expected_after, atol=1e-6)


class _Unflippable(_TriggerNet):
    """Class 0 scores 30 + ..., more than class 1 can ever reach (10 at most)."""

    def forward(self, x):
        return super().forward(x) + torch.tensor([27.0, 0.0])


def test_failed_attacks_have_no_map_values_and_no_case(tmp_path):
    model = loaded_module(_Unflippable(), ["dark", "bright"], target_layer="features.1", input_size=SIZE)
    dark = _record(tmp_path, "dark.png", np.zeros((SIZE, SIZE, 3), np.uint8), 0)
    run = sensitivity.run_one_pixel_sensitivity(
        model, [dark], population=10, max_iterations=2, progress=False
    )
    row = run.table.iloc[0]
    assert not row["success"] and row["adversarial_class"] == 0
    assert np.isnan(row["before"]) and np.isnan(row["after"]) and run.cases == []


def test_fgsm_rows_match_the_closed_form(trigger_model, tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(3):
        # grey images: equal grey levels give bit-equal A in any float arithmetic, so the
        # closed form and the maps have the same ties (rank correlation depends on them)
        array = np.repeat(rng.integers(40, 200, (SIZE, SIZE, 1), dtype=np.uint8), 3, axis=2)
        pixels = trigger_model.pixels([Image.fromarray(array)])
        label = int(trigger_model(pixels).argmax())
        records.append(_record(tmp_path, f"x{i}.png", array, label, boxes=((3, 0, 5, 2),)))
    epsilons = (0.0, 0.3)
    run = sensitivity.run_fgsm(trigger_model, records, epsilons, tolerance=0.0, batch_size=2, progress=False)
    assert isinstance(run, sensitivity.FGSMRun)
    table = run.table.set_index(["image", "epsilon"])
    assert len(table) == 3 * 2
    pixels = trigger_model.pixels([data.load_rgb(r.path) for r in records])
    labels = torch.tensor([r.label for r in records])
    clean = _normalised_a(trigger_model, pixels)
    for epsilon in epsilons:
        attacked = attacks.fgsm(trigger_model, pixels, labels, epsilon)
        with torch.no_grad():
            adversarial = trigger_model(attacked).argmax(1)
        after = _normalised_a(trigger_model, attacked)
        for i, record in enumerate(records):
            row = table.loc[(record.name, epsilon)]
            success = int(adversarial[i]) != record.label
            assert bool(row["success"]) == success
            expected = stats.spearmanr(clean[i].ravel(), after[i].ravel()).statistic
            assert row["rank_corr_true"] == pytest.approx(expected, abs=1e-6)
            if success:  # both classes' maps are the normalised A
                assert row["rank_corr_adversarial"] == pytest.approx(expected, abs=1e-6)
            else:
                assert np.isnan(row["rank_corr_adversarial"])
            peak_row, peak_col = np.unravel_index(np.argmax(after[i]), after[i].shape)
            assert bool(row["pointing_hit_true"]) == bool(peak_col >= 3 and peak_row < 2)
    unattacked = table.xs(0.0, level="epsilon")
    assert unattacked["rank_corr_true"].tolist() == pytest.approx([1.0] * 3)
    assert not unattacked["success"].any()
    assert table.xs(0.3, level="epsilon")["success"].any()  # the adversarial column is exercised


def test_joined_tables_write_both_files(tmp_path, capsys):
    one = sensitivity.OnePixelRun(pd.DataFrame({"model": ["a", "a"], "success": [True, False]}))
    other = sensitivity.OnePixelRun(pd.DataFrame({"model": ["b"], "success": [True]}))
    fgsm = sensitivity.FGSMRun(pd.DataFrame({"model": ["a"] * 3, "epsilon": [0.0, 0.1, 0.2]}))
    attacks_table, fgsm_table = sensitivity.joined_tables({"a": one, "b": other}, {"a": fgsm}, tmp_path)
    assert attacks_table["model"].tolist() == ["a", "a", "b"] and len(fgsm_table) == 3
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "one_pixel.csv"), attacks_table)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "fgsm.csv"), fgsm_table)
    assert "3 one-pixel attacks, 3 FGSM (image, epsilon) pairs" in capsys.readouterr().out
