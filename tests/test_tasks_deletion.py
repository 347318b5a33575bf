"""Deletion and insertion (:mod:`gradcam_core.tasks.deletion`; Petsiuk et al. 2018, Sec. 4.1):
the curves of a hand-built linear model computed by hand, the batched computation against one
forward per step, the shared endpoints, the orders (stable ties, centre-first, seeded random), an
oracle order beating its reverse, and the runner and summary on real embedded images."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from gradcam_core import data
from gradcam_core.methods import GradCAM
from gradcam_core.tasks import common
from gradcam_core.tasks import deletion as d


class PixelLinear(nn.Module):
    """Two classes on one-channel images: logit 0 is 0, logit 1 is ``sum(weights * x)``, so the
    probability of class 1 is ``sigmoid(sum(weights * x))``. Counts the inputs it scores and its
    forward calls."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights.float())
        self.inputs = self.calls = 0

    def forward(self, x):
        self.inputs += x.shape[0]
        self.calls += 1
        score = (x[:, 0] * self.weights).sum((-2, -1))
        return torch.stack([torch.zeros_like(score), score], 1)


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def trapezoid_by_hand(values, fractions) -> float:
    return sum((b - a) * (u + v) / 2 for a, b, u, v in zip(fractions, fractions[1:], values, values[1:]))


#: Weights on four pixels of a 4 x 4 image: 3 at (1, 1), 2 at (1, 2), 1 at (2, 1), 0.5 at (2, 2).
WEIGHTS = torch.zeros(4, 4)
WEIGHTS[1, 1], WEIGHTS[1, 2], WEIGHTS[2, 1], WEIGHTS[2, 2] = 3.0, 2.0, 1.0, 0.5
#: Whole pixels of the 16: 0, 1, 2, 4, 8 and 16.
HAND_FRACTIONS = (0, 1 / 16, 2 / 16, 4 / 16, 8 / 16, 1)


def zeros_canvas(x):
    return torch.zeros_like(x)


def test_perturbation_order_decreasing_with_stable_ties():
    saliency = torch.tensor([[1.0, 3.0], [3.0, 2.0]])
    assert d.perturbation_order(saliency).tolist() == [1, 2, 3, 0]  # the two 3s in row-major order
    ties = torch.zeros(2, 1, 3, 3)  # all equal: row-major order for every map
    assert d.perturbation_order(ties).tolist() == [[list(range(9))], [list(range(9))]]
    signed = torch.tensor([[-2.0, 0.5], [-0.1, 0.0]])  # raw values: most positive first
    assert d.perturbation_order(signed).tolist() == [1, 3, 2, 0]
    ranks = d.pixel_ranks(saliency)
    assert ranks.dtype == torch.int32 and ranks.tolist() == [[3, 0], [1, 2]]
    with pytest.raises(ValueError, match="NaN"):
        d.perturbation_order(torch.tensor([[0.0, float("nan")]]))


def test_centre_first_order_on_small_grids():
    # 3 x 3: the centre, then its four edge neighbours (row-major), then the corners
    assert d.perturbation_order(d.centre_saliency((3, 3))).tolist() == [4, 1, 3, 5, 7, 0, 2, 6, 8]
    # 4 x 4: the four central pixels first, the four corners last
    order = d.perturbation_order(d.centre_saliency((4, 4))).tolist()
    assert order[:4] == [5, 6, 9, 10] and order[-4:] == [0, 3, 12, 15]
    # 2 x 3 (centre between pixels 1 and 4): 1 and 4, then the other four in row-major order
    assert d.perturbation_order(d.centre_saliency((2, 3))).tolist() == [1, 4, 0, 2, 3, 5]
    assert torch.equal(d.reference_saliency("centre", 2, (3, 3))[1], d.centre_saliency((3, 3)).float())


def test_random_order_is_seeded_and_independent_of_batching():
    maps = d.random_saliency(3, (5, 4), seed=7)
    assert maps.shape == (3, 5, 4)
    assert torch.equal(maps, d.random_saliency(3, (5, 4), seed=7))
    assert torch.equal(maps[2], d.random_saliency(1, (5, 4), seed=7, first=2)[0])  # image 2 of the run
    assert not torch.equal(maps, d.random_saliency(3, (5, 4), seed=8))
    assert not torch.equal(maps[0], maps[1])  # a different order per image
    assert all(sorted(m.flatten().tolist()) == list(range(20)) for m in maps)  # permutations: no ties
    with pytest.raises(ValueError, match="unknown reference"):
        d.reference_saliency("corners", 1, (3, 3))


def test_curves_of_a_linear_model_by_hand():
    image = torch.ones(1, 1, 4, 4)
    oracle = (WEIGHTS * image[0, 0])[None, None]  # gradient x input of class 1
    model = PixelLinear(WEIGHTS)
    curves = d.causal_curves(model, image, oracle, fractions=HAND_FRACTIONS, canvas=zeros_canvas)
    assert curves.classes.tolist() == [1]  # top-1: logit 6.5 against 0
    # deletion removes 3, 2, then 1 and 0.5, then only zero-weight pixels
    deletion = [sigmoid(z) for z in (6.5, 3.5, 1.5, 0.0, 0.0, 0.0)]
    # insertion into a zero canvas adds them in the same order
    insertion = [sigmoid(z) for z in (0.0, 3.0, 5.0, 6.5, 6.5, 6.5)]
    np.testing.assert_allclose(curves.deletion[0, 0], deletion, rtol=1e-6)
    np.testing.assert_allclose(curves.insertion[0, 0], insertion, rtol=1e-6)
    np.testing.assert_allclose(curves.x, HAND_FRACTIONS)
    np.testing.assert_allclose(curves.deletion_auc[0, 0], trapezoid_by_hand(deletion, HAND_FRACTIONS), 1e-6)
    np.testing.assert_allclose(curves.insertion_auc[0, 0], trapezoid_by_hand(insertion, HAND_FRACTIONS), 1e-6)
    # by hand: deletion (1/16)(0.9985+0.9707)/2 + ... = 0.4173 to 4 places
    assert round(float(curves.deletion_auc[0, 0]), 4) == round(trapezoid_by_hand(deletion, HAND_FRACTIONS), 4)


def test_insertion_starts_from_rises_gaussian_blur():
    # 8 x 8 (reflect padding needs more than the kernel's 5 px half-width), not constant
    image = (torch.arange(64.0).view(1, 1, 8, 8) - 32) / 16
    blurred = gaussian_blur(image, [11, 11], [5.0, 5.0])  # RISE: klen 11, sigma 5
    assert torch.equal(d.rise_blur(image), blurred) and not torch.allclose(blurred, image)
    weights = torch.randn(8, 8, generator=torch.Generator().manual_seed(3))
    model = PixelLinear(weights)
    saliency = (weights * image[0, 0])[None, None]
    fractions = (0, 1 / 64, 2 / 64, 8 / 64, 32 / 64, 1)
    curves = d.causal_curves(model, image, saliency, torch.tensor([1]), fractions)
    order = d.perturbation_order(saliency[0, 0]).tolist()
    for s, k in enumerate((0, 1, 2, 8, 32, 64)):
        inserted = torch.zeros(64, dtype=torch.bool)
        inserted[order[:k]] = True
        x = torch.where(inserted.view(8, 8), image[0, 0], blurred[0, 0])
        assert curves.insertion[0, 0, s] == pytest.approx(sigmoid(float((weights * x).sum())), rel=1e-5)


def _per_step_curve(module, image, saliency, cls, fractions, curve, canvas):
    """One forward per step, written out for one image and one order."""
    order = d.perturbation_order(saliency)
    n_pixels = order.numel()
    out = []
    for fraction in fractions:
        k = int(round(fraction * n_pixels))
        chosen = torch.zeros(n_pixels, dtype=torch.bool)
        chosen[order[:k]] = True
        chosen = chosen.view(saliency.shape)
        if curve == "deletion":
            x = torch.where(chosen, torch.zeros_like(image), image)
        else:
            x = torch.where(chosen, image, canvas(image[None])[0])
        with torch.no_grad():
            out.append(torch.softmax(module(x[None]), 1)[0, cls].item())
    return np.array(out)


def test_batched_curves_equal_one_forward_per_step():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(3, 1, 6, 6, generator=generator)
    weights = torch.randn(6, 6, generator=generator)
    saliency = torch.randn(3, 4, 6, 6, generator=generator)
    saliency[:, 3] = 0.0  # an all-ties order too
    fractions = (0, 0.1, 0.25, 0.5, 0.8, 1)
    model = PixelLinear(weights)
    for batch_size in (1, 5, 1000):  # chunks that cut across images, orders and curves
        curves = d.causal_curves(model, images, saliency, fractions=fractions, batch_size=batch_size)
        for i in range(3):
            for j in range(4):
                for curve in d.CURVES:
                    expected = _per_step_curve(
                        model, images[i], saliency[i, j], curves.classes[i], fractions, curve, d.rise_blur
                    )
                    np.testing.assert_allclose(getattr(curves, curve)[i, j], expected, rtol=1e-5, atol=1e-7)


def test_endpoints_are_shared_and_curves_batched():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(5, 1, 8, 8, generator=generator)
    saliency = torch.randn(5, 3, 8, 8, generator=generator)
    model = PixelLinear(torch.randn(8, 8, generator=generator))
    fractions = (0, 0.05, 0.2, 0.5, 1)
    curves = d.causal_curves(model, images, saliency, fractions=fractions, batch_size=16)
    p = torch.softmax(model(images), 1)[torch.arange(5), torch.as_tensor(curves.classes)].numpy()
    p_blur = torch.softmax(model(d.rise_blur(images)), 1)[torch.arange(5), torch.as_tensor(curves.classes)]
    p_neutral = torch.softmax(model(torch.zeros(1, 1, 8, 8)), 1)[0, torch.as_tensor(curves.classes)]
    for j in range(3):  # the same endpoints for every order of an image
        np.testing.assert_allclose(curves.deletion[:, j, 0], p, rtol=1e-6)
        np.testing.assert_allclose(curves.insertion[:, j, -1], p, rtol=1e-6)
        np.testing.assert_allclose(curves.insertion[:, j, 0], p_blur.numpy(), rtol=1e-6)
        np.testing.assert_allclose(curves.deletion[:, j, -1], p_neutral.numpy(), rtol=1e-6)
    # forwards: image and canvas once per image, the neutral input once, 3 interior steps x 2 curves
    assert curves.shared_forwards == 2 * 5 + 1 and curves.forwards.tolist() == [5 * 2 * 3] * 3
    model.inputs = model.calls = 0
    d.causal_curves(model, images, saliency, fractions=fractions, batch_size=16)
    assert model.inputs == 5 + 5 + 1 + 3 * 5 * 2 * 3
    # batched: the images in one forward, then the canvases, the neutral input and the perturbed
    # inputs together, 16 per forward (no forward per step)
    assert model.calls == 1 + math.ceil((5 + 1 + 3 * 5 * 2 * 3) / 16)
    # given the image's and the neutral input's probabilities, neither is scored again
    model.inputs = 0
    given = d.causal_curves(
        model,
        images,
        saliency,
        fractions=fractions,
        image_probabilities=torch.softmax(model(images), 1),
        neutral_probabilities=curves.neutral_probabilities,
    )
    assert model.inputs == 5 + 5 + 3 * 5 * 2 * 3 and given.shared_forwards == 5
    np.testing.assert_allclose(given.deletion, curves.deletion, rtol=1e-6)
    np.testing.assert_allclose(given.insertion, curves.insertion, rtol=1e-6)


def test_oracle_order_beats_its_reverse():
    """Gradient x input of the logit margin (explained class minus the other) is each pixel's
    exact share of that margin in this linear model (removing it to 0, or inserting it into a
    zero canvas), so its order is the best possible one and its reverse the worst."""
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(6, 1, 8, 8, generator=generator)
    model = PixelLinear(torch.randn(8, 8, generator=generator))
    classes = model(images).argmax(1)
    assert classes.unique().numel() == 2  # both classes explained
    x = images.clone().requires_grad_(True)
    logits = model(x)
    (logits.gather(1, classes[:, None]) - logits.gather(1, 1 - classes[:, None])).sum().backward()
    oracle = (x.grad * images)[:, 0]
    saliency = torch.stack([oracle, -oracle], 1)  # the oracle order and its reverse
    curves = d.causal_curves(model, images, saliency, classes, np.arange(65) / 64, canvas=zeros_canvas)
    assert (curves.deletion_auc[:, 0] < curves.deletion_auc[:, 1]).all()
    assert (curves.insertion_auc[:, 0] > curves.insertion_auc[:, 1]).all()


def test_fractions_and_auc():
    assert d.pixel_counts((0, 0.02, 0.5, 1), 224 * 224).tolist() == [0, 1004, 25088, 50176]
    for bad in ((0.1, 1), (0, 0.9), (0, 0.5, 0.5, 1), (0,), [[0, 1]]):
        with pytest.raises(ValueError, match="fractions"):
            d.check_fractions(bad)
    assert d.auc([1, 1, 1], [0, 0.3, 1]) == pytest.approx(1.0)
    assert d.auc([1, 0], [0, 1]) == pytest.approx(0.5)
    assert d.FRACTIONS[0] == 0 and d.FRACTIONS[-1] == 1 and len(d.FRACTIONS) == 9
    petsiuk = d.pixel_counts(d.PETSIUK_FRACTIONS, 224 * 224)  # Petsiuk et al.: steps of 224 pixels
    assert len(petsiuk) == 225 and set(np.diff(petsiuk)) == {224}
    with pytest.raises(ValueError, match=r"\(N, M, H, W\)"):
        d.causal_curves(PixelLinear(WEIGHTS), torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))


@pytest.fixture(scope="module")
def real_run(squeezenet, ilsvrc_records):
    return d.run_deletion_insertion(
        squeezenet,
        ilsvrc_records,
        methods=("grad-cam", "backprop"),
        n_images=3,
        fractions=(0, 0.1, 0.5, 1),
        batch_size=16,
        image_batch=2,  # two image batches, so random orders are drawn across batches
        progress=False,
    )


def test_runner_rows_on_real_images(real_run, squeezenet, ilsvrc_records):
    run, table = real_run, real_run.table
    assert isinstance(run, d.DeletionRun) and isinstance(run, common.TaskRun) and run.skipped == []
    assert run.seconds > 0 and run.fractions == (0.0, 0.1, 0.5, 1.0)
    assert len(table) == 3 * 4 and list(table.columns[:2]) == ["model", "image"]
    assert table["method"].tolist()[:4] == ["grad-cam", "backprop", "random", "centre"]
    assert table.groupby("image")["method"].count().tolist() == [4, 4, 4]
    assert table["reference"].tolist()[:4] == [False, False, True, True]
    deletion_columns = [c for _, c in d.curve_columns(table, "deletion")]
    insertion_columns = [c for _, c in d.curve_columns(table, "insertion")]
    assert deletion_columns == ["deletion_0", "deletion_0.1", "deletion_0.5", "deletion_1"]
    assert insertion_columns == ["insertion_0", "insertion_0.1", "insertion_0.5", "insertion_1"]
    values = table[["deletion_auc", "insertion_auc", *deletion_columns, *insertion_columns]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    for _, rows in table.groupby("image"):  # shared endpoints; the image's own probability at both ends
        for column in ("deletion_0", "deletion_1", "insertion_0", "insertion_1"):
            assert rows[column].nunique() == 1
        np.testing.assert_allclose(rows["deletion_0"], rows["insertion_1"])
    # the explained class is the top-1 prediction, and its probability starts the deletion curve
    records = ilsvrc_records[:3]
    x = squeezenet.preprocess([data.load_rgb(r.path) for r in records])
    with torch.no_grad():
        probabilities = torch.softmax(squeezenet(x), 1)
    first = table.drop_duplicates("image")
    assert first["class"].tolist() == probabilities.argmax(1).tolist()
    assert first["label"].tolist() == [r.label for r in records]
    assert (first["correct"] == (first["class"] == first["label"])).all()
    np.testing.assert_allclose(first["deletion_0"], probabilities.max(1).values.numpy(), rtol=1e-4)
    # Grad-CAM's curve on image 0, one forward per step on the real model
    cls = int(first["class"].iloc[0])
    saliency = GradCAM(squeezenet).attribute(x[:1], cls)[0, 0]
    row = table[(table["image"] == records[0].name) & (table["method"] == "grad-cam")].iloc[0]
    for curve, columns in (("deletion", deletion_columns), ("insertion", insertion_columns)):
        expected = _per_step_curve(squeezenet.module, x[0], saliency, cls, run.fractions, curve, d.rise_blur)
        np.testing.assert_allclose(row[columns].to_numpy(float), expected, rtol=1e-3, atol=1e-5)
    trapezoid = trapezoid_by_hand(row[deletion_columns].tolist(), [0, 0.1, 0.5, 1])
    assert row["deletion_auc"] == pytest.approx(trapezoid, abs=1e-4)  # 0.1 * 50176 px is not whole


def test_runner_timings_and_seeded_references(real_run, squeezenet, ilsvrc_records):
    timings = real_run.timings
    assert timings["method"].tolist() == ["grad-cam", "backprop", "random", "centre", "endpoints"]
    assert (timings["map_seconds"].iloc[:2] > 0).all() and (timings["curve_seconds"] > 0).all()
    # per order: 3 images x 2 curves x 2 interior steps; endpoints: images, canvases, and one
    # neutral input for the run
    assert timings["curve_forwards"].tolist() == [12, 12, 12, 12, 3 + 3 + 1]
    again = d.run_deletion_insertion(
        squeezenet,
        ilsvrc_records,
        methods=(),
        references=("random",),
        n_images=3,
        fractions=(0, 0.1, 0.5, 1),
        image_batch=3,  # batched differently: the same random orders
        progress=False,
    )
    first = real_run.table[real_run.table["method"] == "random"].reset_index(drop=True)
    np.testing.assert_allclose(again.table["deletion_auc"], first["deletion_auc"], rtol=1e-4)
    other_seed = d.run_deletion_insertion(
        squeezenet,
        ilsvrc_records,
        methods=(),
        references=("random",),
        n_images=1,
        fractions=(0, 0.1, 0.5, 1),
        seed=1,
        progress=False,
    )
    assert other_seed.table["deletion_0.1"].iloc[0] != first["deletion_0.1"].iloc[0]


def test_runner_limits_a_costly_method_to_the_first_images(squeezenet, ilsvrc_records):
    run = d.run_deletion_insertion(
        squeezenet,
        ilsvrc_records,
        methods=("backprop",),
        references=("centre",),
        method_images={"backprop": 1},
        n_images=2,
        fractions=(0, 0.5, 1),
        progress=False,
    )
    table = run.table
    assert table.groupby("method")["image"].nunique().to_dict() == {"backprop": 1, "centre": 2}
    assert table[table["method"] == "backprop"]["image"].tolist() == [ilsvrc_records[0].name]
    assert run.timings.set_index("method")["curve_forwards"].to_dict() == {
        "centre": 2 * 2,
        "backprop": 1 * 2,
        "endpoints": 2 + 2 + 1 + 1,  # the limited method's curves score its image's canvas again
    }
    with pytest.raises(ValueError, match="method_images"):
        d.run_deletion_insertion(squeezenet, ilsvrc_records, methods=("backprop",), method_images={"cam": 1})


def test_runner_refuses_bad_arguments(squeezenet, ilsvrc_records):
    with pytest.raises(ValueError, match="unknown method"):
        d.run_deletion_insertion(squeezenet, ilsvrc_records, methods=("grad-kam",), n_images=1)
    with pytest.raises(ValueError, match="unknown reference"):
        d.run_deletion_insertion(squeezenet, ilsvrc_records, methods=(), references=("corners",), n_images=1)
    with pytest.raises(ValueError, match="n_images"):
        d.run_deletion_insertion(squeezenet, ilsvrc_records, n_images=0)
    with pytest.raises(ValueError, match="fractions"):
        d.run_deletion_insertion(squeezenet, ilsvrc_records, n_images=1, fractions=(0, 0.5))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        d.run_deletion_insertion(squeezenet, ilsvrc_records, methods=(), references=(), n_images=1)
    with pytest.raises(ValueError, match="has no setting"):
        d.run_deletion_insertion(
            squeezenet, ilsvrc_records, methods=("backprop",), method_settings={"backprop": {"n_steps": 2}}
        )


def test_summary_and_mean_curves():
    rng = np.random.default_rng(0)
    rows = []
    for model in ("a", "b"):
        for i in range(12):
            base = rng.uniform(0.1, 0.5)
            for method, shift in (("grad-cam", 0.0), ("backprop", 0.1), ("random", 0.2)):
                rows.append(
                    {
                        "model": model,
                        "image": f"im{i}",
                        "method": method,
                        "deletion_auc": base + shift,
                        "insertion_auc": 0.9 - base - shift,
                        "deletion_0": 1.0,
                        "deletion_1": base,
                        "insertion_0": 0.0,
                        "insertion_1": 1.0,
                    }
                )
    table = pd.DataFrame(rows)
    summary = d.deletion_summary(table)
    assert summary[["model", "method"]].values.tolist() == [
        [m, x] for m in ("a", "b") for x in ("grad-cam", "backprop", "random")
    ]
    assert (summary["n_images"] == 12).all()
    for _, row in summary.iterrows():
        values = table[(table["model"] == row["model"]) & (table["method"] == row["method"])]
        assert row["deletion_auc"] == pytest.approx(values["deletion_auc"].mean())
        assert row["deletion_low"] < row["deletion_auc"] < row["deletion_high"]
        assert row["insertion_low"] < row["insertion_auc"] < row["insertion_high"]
        assert isinstance(row["deletion"], str) and "(" in row["deletion"]
    shifts = {"grad-cam": 0.0, "backprop": 0.1, "random": 0.2}
    for method, shift in shifts.items():  # every image shifted alike: the paired interval is a point
        rows_of = summary[summary["method"] == method]
        np.testing.assert_allclose(rows_of[["deletion_diff", "deletion_diff_low"]], shift, atol=1e-12)
        np.testing.assert_allclose(rows_of[["insertion_diff", "insertion_diff_high"]], -shift, atol=1e-12)
    assert d.deletion_summary(table, seed=0).equals(summary)  # seeded
    without = d.deletion_summary(table[table["method"] != "grad-cam"])
    assert without["deletion_diff"].isna().all()
    curves = d.mean_curves(table)
    assert set(curves.columns) == {"model", "method", "curve", "fraction", "probability", "n"}
    assert len(curves) == 2 * 3 * 2 * 2 and (curves["n"] == 12).all()
    got = curves[
        (curves["model"] == "a") & (curves["method"] == "backprop") & (curves["curve"] == "deletion")
    ]
    expected = table[(table["model"] == "a") & (table["method"] == "backprop")]["deletion_1"].mean()
    assert got["fraction"].tolist() == [0.0, 1.0] and got["probability"].tolist() == pytest.approx(
        [1, expected]
    )
