"""Task 7 (:mod:`gradcam_core.tasks.fidelity`): rows on a random-weight MNIST stand-in checked
against direct computation (occlusion of the salient pixels, of as many random pixels, the
contrastivity), the figure data, a stand-in run and the joined table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradcam_core import metrics, standins, training
from gradcam_core.maps import normalized_positive
from gradcam_core.methods import GradCAM, GradientShap, IntegratedGradients
from gradcam_core.tasks import common, fidelity
from tests.helpers import random_standin


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):
    return random_standin("mnist-cnn", tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def mnist_splits():
    return training.mnist_splits(standins.MNIST_TRAIN_DIGITS)


def test_saliency_maps_are_the_normalised_positive_evidence(mnist_model, mnist_splits):
    x = mnist_splits[1].images[:3].contiguous(memory_format=torch.channels_last)
    classes = torch.tensor([[0, 1], [2, 3], [4, 5]])
    explainer = IntegratedGradients(mnist_model, n_steps=4)
    saliency = fidelity.saliency_maps(explainer, x, classes)
    raw = explainer.attribute(x, classes)
    assert saliency.shape == (3, 2, 28, 28) and (raw < 0).any()  # IG is signed
    assert torch.equal(saliency, normalized_positive(raw))
    positive = raw.clamp_min(0)[0, 0]
    assert torch.allclose(saliency[0, 0], (positive - positive.min()) / (positive.max() - positive.min()))


def _fidelity_run(model, images, labels, background):
    explainers = common.create_explainers(
        ("grad-cam", "gradient-shap"), model, background=background, shap_samples=4
    )
    return fidelity.run_fidelity_contrastivity(
        model, images, labels, explainers, thresholds=(0.1,), batch_size=4, progress=False
    )


def test_fidelity_rows_match_direct_computation(mnist_model, mnist_splits):
    model = mnist_model
    train, test = mnist_splits
    images, labels = test.images[:6], test.labels[:6]
    background = train.images[:4]
    run = _fidelity_run(model, images, labels, background)
    assert isinstance(run, fidelity.FidelityRun) and run.model_name == "mnist-cnn"
    table = run.table
    assert (
        len(table) == 6 * 2 and set(table["index"]) == set(range(6)) and set(table["model"]) == {"mnist-cnn"}
    )
    x = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        top2 = model(x).topk(2, dim=1).indices
    saliency = normalized_positive(GradCAM(model).attribute(x, top2).detach())
    masks = metrics.mask_above_level(saliency, 0.1)
    with torch.no_grad():
        after = model(torch.where(masks[:, :1], torch.zeros_like(x), x)).argmax(1)
    rows = table[table["method"] == "grad-cam"].sort_values("index")
    assert (
        rows["predicted"].tolist() == top2[:, 0].tolist() and rows["second"].tolist() == top2[:, 1].tolist()
    )
    assert rows["correct_after"].tolist() == (after == labels).tolist()
    assert rows["correct_before"].tolist() == (top2[:, 0] == labels).tolist()
    expected = metrics.contrastivity(masks[:, 0].numpy(), masks[:, 1].numpy())
    np.testing.assert_allclose(rows["contrastivity"].to_numpy(), expected)
    np.testing.assert_allclose(rows["occluded_fraction"].to_numpy(), masks[:, 0].float().mean((1, 2)).numpy())
    # the random reference: as many pixels, in an order drawn per batch from one seeded generator
    generator = torch.Generator().manual_seed(0)
    random_after = []
    for first in (0, 4):
        chunk, mask = x[first : first + 4], masks[first : first + 4, 0]
        order = torch.rand(len(chunk), 28, 28, generator=generator).flatten(1).argsort(1).argsort(1)
        random_mask = order.view(-1, 28, 28) < mask.flatten(1).sum(1)[:, None, None]
        assert (random_mask.flatten(1).sum(1) == mask.flatten(1).sum(1)).all()
        with torch.no_grad():
            random_after += (
                model(torch.where(random_mask[:, None], torch.zeros_like(chunk), chunk)).argmax(1).tolist()
            )
    assert rows["correct_after_random"].tolist() == [int(a) == int(y) for a, y in zip(random_after, labels)]
    again = _fidelity_run(model, images, labels, background)
    pd.testing.assert_frame_equal(table, again.table)  # seeded: random masks and SHAP alike


def test_fidelity_examples_hold_the_top2_saliency(mnist_model, mnist_splits):
    images = mnist_splits[1].images[:3]
    explainers = {"grad-cam": GradCAM(mnist_model)}
    examples = fidelity.fidelity_examples(mnist_model, images, explainers)
    assert isinstance(examples, fidelity.FidelityExamples)
    x = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        top2 = mnist_model(x).topk(2, dim=1).indices
    assert examples.images.shape == (3, 28, 28) and np.array_equal(examples.images, images[:, 0].numpy())
    assert np.array_equal(examples.classes, top2.numpy())
    expected = normalized_positive(GradCAM(mnist_model).attribute(x, top2)).numpy()
    np.testing.assert_allclose(examples.maps["grad-cam"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trained_now", [False, True])
def test_standin_run_evaluates_a_seeded_sample(mnist_model, mnist_splits, tmp_path, trained_now):
    train, test = mnist_splits
    config = standins.default_config("mnist-cnn")
    trained = training.TrainedModel(config, tmp_path / "x.pt", "0" * 64, [], 12.5, trained_now)
    standin = fidelity.FidelityStandIn("mnist", trained, mnist_model, train, test)
    run = fidelity.run_standin(
        standin,
        n_eval=5,
        n_background=3,
        n_examples=2,
        seed=1,
        methods=("grad-cam", "gradient-shap"),
        shap_samples=2,
        thresholds=(0.1,),
        batch_size=8,
        progress=False,
    )
    assert run.dataset == "mnist" and run.training_seconds == (12.5 if trained_now else 0.0)
    assert run.total_seconds == pytest.approx(run.training_seconds + run.seconds)
    # the same as evaluating the seeded samples directly
    evaluation, background = test.sample(5, 1), train.sample(3, 1).images
    explainers = {
        "grad-cam": GradCAM(mnist_model),
        "gradient-shap": GradientShap(mnist_model, background=background, n_samples=2, seed=1),
    }
    direct = fidelity.run_fidelity_contrastivity(
        mnist_model,
        evaluation.images,
        evaluation.labels,
        explainers,
        thresholds=(0.1,),
        seed=1,
        progress=False,
    )
    pd.testing.assert_frame_equal(run.table, direct.table)
    assert run.examples.images.shape == (2, 28, 28)
    assert np.array_equal(run.examples.images, evaluation.images[:2, 0].numpy())


def test_standin_test_accuracy_by_hand(mnist_model, mnist_splits):
    train, test = mnist_splits
    small = test.sample(50, seed=3)
    trained = training.TrainedModel(standins.default_config("mnist-cnn"), None, "", [], 0.0, False)
    standin = fidelity.FidelityStandIn("mnist", trained, mnist_model, train, small)
    with torch.no_grad():
        predicted = mnist_model(small.images.contiguous(memory_format=torch.channels_last)).argmax(1)
    assert standin.test_accuracy() == pytest.approx(float((predicted == small.labels).float().mean()))


def test_joined_table_writes_and_counts(tmp_path, capsys):
    def run(dataset, images):
        table = pd.DataFrame(
            {"model": f"{dataset}-cnn", "index": np.repeat(range(images), 2), "method": "grad-cam"}
        )
        return fidelity.FidelityRun(table, dataset=dataset)

    runs = {"mnist": run("mnist", 3), "cifar10": run("cifar10", 2)}
    table = fidelity.joined_table(runs, tmp_path / "fidelity.csv")
    assert len(table) == 10 and table["model"].tolist()[:6] == ["mnist-cnn"] * 6
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "fidelity.csv"), table)
    assert "10 (image, method, threshold) rows over 3 mnist, 2 cifar10 test images" in capsys.readouterr().out
