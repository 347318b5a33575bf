"""Sanity checks of Adebayo et al. 2018 (:mod:`gradcam_core.tasks.sanity`): layers randomised and
restored bit for bit, the cascades of the embedded models, the maps and their similarities, the
runners' tables, the summary and the verdict rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradcam_core import methods, metrics, models, standins, statistics, training
from gradcam_core.maps import normalize_maps, reduce_channels
from gradcam_core.tasks import sanity
from tests.helpers import image_batch, random_standin

# ------------------------------------------------------------------------------ randomised layers


def _snapshot(module: torch.nn.Module) -> dict[str, tuple[torch.Tensor, int, tuple]]:
    """Every parameter and buffer: a copy, where its storage is and its strides."""
    tensors = dict(module.named_parameters()) | dict(module.named_buffers())
    return {name: (t.detach().clone(), t.data_ptr(), t.stride()) for name, t in tensors.items()}


def _current(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters()) | dict(module.named_buffers())


def _inside(name: str, layers) -> bool:
    return any(name.startswith(layer + ".") for layer in layers)


def _assert_restored(module, before):
    now = _current(module)
    assert set(now) == set(before)
    for name, (value, pointer, stride) in before.items():
        assert torch.equal(now[name], value), f"{name} was not restored"  # bit-exact (no NaN here)
        assert now[name].data_ptr() == pointer and now[name].stride() == stride  # in place, layout kept


def test_randomised_layers_change_only_the_chosen_layers_then_restore_everything(embedded_model):
    module = embedded_model.module
    layers = sanity.cumulative_layers(sanity.CASCADE_STEPS[embedded_model.name])[1]  # classifier + a group
    before = _snapshot(module)
    rng_before = torch.get_rng_state()
    with sanity.randomised_layers(module, layers, seed=0) as randomised:
        assert randomised is module
        now = _current(module)
        for layer in layers:
            names = [n for n in before if _inside(n, [layer])]
            assert names and any(not torch.equal(now[n], before[n][0]) for n in names), f"{layer} unchanged"
        others = [n for n in before if not _inside(n, layers)]
        assert others and all(torch.equal(now[n], before[n][0]) for n in others)
        if embedded_model.name == "mobilenet_v1_0.75":  # BatchNorm statistics are reset too
            assert torch.equal(now["features.conv_pw_13_bn.running_mean"], torch.zeros(768))
            assert torch.equal(now["features.conv_pw_13_bn.running_var"], torch.ones(768))
    _assert_restored(module, before)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global generator is left alone


def test_randomised_layers_restore_the_weights_after_an_exception(squeezenet):
    module = squeezenet.module
    before = _snapshot(module)
    layers = sanity.cumulative_layers(sanity.CASCADE_STEPS["squeezenet1_1"])[-1]  # everything
    with pytest.raises(RuntimeError, match="inside"), sanity.randomised_layers(module, layers):
        assert not torch.equal(module.features[0].weight, before["features.0.weight"][0])
        raise RuntimeError("inside the block")
    _assert_restored(module, before)


def test_random_weights_are_seeded_per_layer(squeezenet):
    module = squeezenet.module
    with sanity.randomised_layers(module, ["classifier.1"], seed=0):
        alone = module.classifier[1].weight.clone()
    with sanity.randomised_layers(module, ["classifier.1", "features.12"], seed=0):
        with_more = module.classifier[1].weight.clone()
    with sanity.randomised_layers(module, ["classifier.1"], seed=1):
        other_seed = module.classifier[1].weight.clone()
    assert torch.equal(alone, with_more)  # the same layer has the same random weights at every step
    assert not torch.equal(alone, other_seed)
    assert sanity.layer_seed(0, "classifier.1") == sanity.layer_seed(0, "classifier.1")
    assert sanity.layer_seed(0, "classifier.1") != sanity.layer_seed(0, "features.12")


def test_unknown_and_parameterless_layers_are_refused_and_nothing_changes(squeezenet):
    before = _snapshot(squeezenet.module)
    with (
        pytest.raises(models.UnknownLayerError),
        sanity.randomised_layers(squeezenet.module, ["features.99"]),
    ):
        pass
    relu = ["classifier.1", "features.1"]
    with (
        pytest.raises(ValueError, match="'features.1' has no parameters"),
        sanity.randomised_layers(squeezenet.module, relu),
    ):
        pass
    _assert_restored(squeezenet.module, before)


# ------------------------------------------------------------------------------ cascades


def test_cascade_steps_are_cumulative_from_the_classifier_down_to_the_first_convolution(embedded_model):
    module = embedded_model.module
    steps = sanity.cascade_steps(embedded_model.name)
    assert 4 <= len(steps) <= 5
    cumulative = sanity.cumulative_layers(steps)
    for smaller, larger in zip(cumulative, cumulative[1:]):
        assert set(smaller) < set(larger)  # each step keeps the ones before and adds layers
    assert embedded_model.spec.classifier in steps[0].layers  # the top first
    layers = [name for step in steps for name in step.layers]
    assert len(layers) == len(set(layers))  # no layer in two groups
    for name in layers:
        models.get_layer(module, name)  # every name exists
    first_conv = next(n for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv in steps[-1].layers and first_conv in cumulative[-1]
    # the last step leaves nothing trained: every module with weights lies in a randomised layer
    with_weights = [n for n, m in module.named_modules() if list(m.parameters(recurse=False))]
    assert all(n in cumulative[-1] or _inside(n, cumulative[-1]) for n in with_weights)
    with pytest.raises(ValueError, match="no cascade for model 'vgg16'; cascades: squeezenet1_1"):
        sanity.cascade_steps("vgg16")


# ------------------------------------------------------------------------------ maps and similarities


def test_method_maps_are_the_explainers_own_and_guided_grad_cam_is_assembled_exactly(
    squeezenet, ilsvrc_records
):
    x = image_batch(squeezenet, ilsvrc_records, count=2)
    with torch.no_grad():
        classes = squeezenet(x).argmax(1)
    explainers = sanity.sanity_explainers(squeezenet, sanity.SANITY_METHODS, ig_steps=1)
    assert "guided-grad-cam" not in explainers  # assembled, not run
    maps = sanity.method_maps(explainers, x, classes)
    assert list(maps) == list(sanity.SANITY_METHODS)
    target = classes[:, None]
    guided_grad_cam = methods.create("guided-grad-cam", squeezenet).attribute_pixels(x, target)[:, 0]
    for name, reduced in (
        ("sum", maps["guided-grad-cam"].signed),
        ("abs_max", maps["guided-grad-cam"].absolute),
    ):
        assert np.allclose(reduced, reduce_channels(guided_grad_cam, name).numpy(), rtol=1e-5, atol=1e-12)
    grad_cam = methods.create("grad-cam", squeezenet).attribute(x, target)[:, 0].numpy()
    assert np.array_equal(maps["grad-cam"].signed, grad_cam) and np.array_equal(
        maps["grad-cam"].absolute, grad_cam
    )
    backprop = methods.create("backprop", squeezenet).attribute(x, target)[:, 0].numpy()  # abs_max by default
    assert np.allclose(maps["backprop"].absolute, backprop)
    ig = methods.create("integrated-gradients", squeezenet, n_steps=1).attribute(x, target)[:, 0].numpy()
    assert np.allclose(maps["integrated-gradients"].signed, ig, rtol=1e-4, atol=1e-7)  # channels summed
    for m in maps.values():
        assert np.array_equal(m.normalised, normalize_maps(torch.from_numpy(m.absolute)).numpy())
        assert m.normalised.min() >= 0 and m.normalised.max() <= 1 and m.signed.shape == (2, 224, 224)


def test_similarities_of_prepared_maps_equal_the_metric_functions():
    rng = np.random.default_rng(0)
    signed_a = rng.normal(size=(48, 48)).astype(np.float32)
    signed_b = signed_a + rng.normal(size=(48, 48)).astype(np.float32)
    signed_b[:20] = 0  # ties, as a rectified map has
    forms = []
    for signed in (signed_a, signed_b):
        absolute = np.abs(signed)
        forms.append((signed, absolute, normalize_maps(torch.from_numpy(absolute)).numpy()))
    a, b = (sanity.prepare_map(*form, hog_cell=8) for form in forms)
    got = sanity.similarities(a, b)
    assert list(got) == list(sanity.SIMILARITY_METRICS)
    assert got["spearman_abs"] == pytest.approx(metrics.spearman_abs(forms[0][1], forms[1][1]), abs=1e-12)
    assert got["spearman_signed"] == pytest.approx(metrics.spearman_signed(signed_a, signed_b), abs=1e-12)
    assert got["ssim"] == pytest.approx(metrics.ssim_similarity(forms[0][2], forms[1][2]), abs=1e-12)
    assert got["hog"] == pytest.approx(metrics.hog_similarity(forms[0][2], forms[1][2], 8), abs=1e-12)
    zero = np.zeros((48, 48), np.float32)
    constant = sanity.prepare_map(zero, zero, zero, hog_cell=8)
    assert constant.constant and not a.constant
    nan = sanity.similarities(a, constant)
    assert np.isnan(nan["spearman_abs"]) and np.isnan(nan["spearman_signed"]) and np.isnan(nan["hog"])
    assert nan["ssim"] == pytest.approx(metrics.ssim_similarity(forms[0][2], zero))


# ------------------------------------------------------------------------------ the runners


def test_cascading_runner_gives_a_row_per_image_step_and_method(squeezenet, ilsvrc_records):
    records = ilsvrc_records[:3]
    before = _snapshot(squeezenet.module)
    full = sanity.CASCADE_STEPS["squeezenet1_1"]
    steps = (full[0], sanity.CascadeStep("below", tuple(n for step in full[1:] for n in step.layers)))
    run = sanity.run_cascading_randomisation(
        squeezenet, records, n_images=3, ig_steps=1, batch_size=2, steps=steps, progress=False
    )  # two steps to save time; two batches: the reference pairs cross the batch boundary
    _assert_restored(squeezenet.module, before)
    table = run.table
    assert list(table.columns) == [
        "model", "index", "image", "label", "predicted", "step_index", "step", "other_index", "method",
        "spearman_abs", "spearman_signed", "ssim", "hog", "constant_map",
    ]  # fmt: skip
    assert len(table) == 3 * (len(steps) + 1) * len(sanity.SANITY_METHODS) and run.skipped == []
    assert (table["model"] == "squeezenet1_1").all()
    for index, group in table.groupby("index"):
        assert list(dict.fromkeys(group["step"])) == [s.name for s in steps] + [sanity.UNRELATED]
        assert group.groupby("step").size().eq(len(sanity.SANITY_METHODS)).all()
        assert (
            group["image"].iloc[0] == records[index].name and group["label"].iloc[0] == records[index].label
        )
        reference = group[group["step"] == sanity.UNRELATED]
        assert (reference["other_index"] == (index + 1) % 3).all() and (reference["step_index"] == 0).all()
        cascade = group[group["step"] != sanity.UNRELATED]
        assert (cascade["other_index"] == index).all() and cascade["step_index"].between(1, len(steps)).all()
    with torch.no_grad():
        predicted = squeezenet(image_batch(squeezenet, records, count=3)).argmax(1).tolist()
    assert table.groupby("index")["predicted"].first().tolist() == predicted  # the original model's class
    values = table[list(sanity.SIMILARITY_METRICS)].to_numpy(np.float64)
    assert np.all((values[np.isfinite(values)] >= -1 - 1e-9) & (values[np.isfinite(values)] <= 1 + 1e-9))
    assert table["constant_map"].dtype == bool
    constant = table["constant_map"]
    assert (
        table.loc[constant, "spearman_abs"].isna().all()
        and table.loc[~constant, "spearman_abs"].notna().all()
    )
    assert set(run.timings) == set(sanity.SANITY_METHODS) | {"similarity"} and run.seconds > 0
    # the figure's example, through the model's own cascade
    example = sanity.cascade_example(squeezenet, records[0], methods=("grad-cam",), ig_steps=1)
    steps = full
    assert example.steps == ["original", *(s.name for s in steps)] and example.predicted == predicted[0]
    assert example.maps["grad-cam"].shape == (len(steps) + 1, 224, 224) and example.image.shape == (
        224,
        224,
        3,
    )
    assert example.maps["grad-cam"].min() >= 0 and example.maps["grad-cam"].max() <= 1
    assert np.abs(example.signed["grad-cam"]).max() <= 1
    _assert_restored(squeezenet.module, before)


def _random_standins(monkeypatch, tmp_path):
    """Both MNIST stand-ins with random weights (seeds 0 and 1), as training.load_standin gives them."""
    loaded = {}
    for seed, name in enumerate(("mnist-cnn", "mnist-cnn-permuted-labels")):
        model = random_standin(name, tmp_path, seed)
        path = tmp_path / f"{name}-random.pt"
        trained = training.TrainedModel(standins.default_config(name), path, "sha", [], 1.5, seed == 1)
        loaded[name] = (trained, model)
    monkeypatch.setattr(training, "load_standin", lambda name, device="auto", progress=True: loaded[name])
    return loaded


def test_data_randomisation_runner_compares_the_two_stand_ins(monkeypatch, tmp_path):
    loaded = _random_standins(monkeypatch, tmp_path)
    run = sanity.run_data_randomisation(n_images=3, ig_steps=1, batch_size=2, progress=False)
    table = run.table
    assert len(table) == 3 * 2 * len(sanity.SANITY_METHODS)
    assert set(table["step"]) == {sanity.PERMUTED_LABELS, sanity.UNRELATED}
    assert (table["model"] == "mnist-cnn").all() and "image" not in table.columns
    _, test = training.training_data(standins.default_config("mnist-cnn"))
    evaluation = test.sample(3, 0)
    with torch.no_grad():
        predicted = loaded["mnist-cnn"][1](evaluation.images).argmax(1).tolist()
    assert table.groupby("index")["predicted"].first().tolist() == predicted
    assert table.groupby("index")["label"].first().tolist() == evaluation.labels.tolist()
    reference = table[table["step"] == sanity.UNRELATED]
    assert set(zip(reference["index"], reference["other_index"])) == {(0, 1), (1, 2), (2, 0)}
    accuracies = run.accuracies
    assert accuracies[["model", "split", "labels"]].values.tolist() == [
        ["mnist-cnn", "train", "true"],
        ["mnist-cnn", "test", "true"],
        ["mnist-cnn-permuted-labels", "train", "true"],
        ["mnist-cnn-permuted-labels", "train", "permuted (trained on)"],
        ["mnist-cnn-permuted-labels", "test", "true"],
    ]
    assert accuracies["accuracy"].between(0, 1).all()
    assert run.training["trained_now"].tolist() == [False, True] and run.training_seconds_this_run == 1.5
    verdicts = sanity.sanity_verdicts(table)
    assert len(verdicts) == len(sanity.SANITY_METHODS) and (verdicts["step"] == sanity.PERMUTED_LABELS).all()


# ------------------------------------------------------------------------------ summary and verdicts


def _hand_table() -> pd.DataFrame:
    """Method "sticky" stays close to its original at the last step (0.8 vs 0.1 for unrelated
    images) though it dropped at step 1; "fades" falls to the unrelated level; "below" falls under
    it; "blank" has no Spearman value at the last step (constant maps)."""
    rows = []
    noise = [0.01, -0.02, 0.015, -0.005, 0.0, 0.02, -0.01, 0.005]
    for i, e in enumerate(noise):
        for method, first, last in (
            ("sticky", 0.2, 0.8 + e),
            ("fades", 0.9, 0.1 - e),
            ("below", 0.9, 0.0 + e),
            ("blank", 0.9, np.nan),
        ):
            base = {"model": "m", "index": i, "method": method}
            rows.append(base | {"step_index": 1, "step": "top", "spearman_abs": first, "ssim": first})
            ssim_last = 0.1 + e if method == "blank" else last
            rows.append(base | {"step_index": 2, "step": "all", "spearman_abs": last, "ssim": ssim_last})
            rows.append(
                base | {"step_index": 0, "step": sanity.UNRELATED, "spearman_abs": 0.1 + e, "ssim": 0.1 + e}
            )
    table = pd.DataFrame(rows)
    table["spearman_signed"] = table["spearman_abs"]
    table["hog"] = table["spearman_abs"]
    return table


def test_verdict_rule_on_a_hand_made_table():
    verdicts = sanity.sanity_verdicts(_hand_table()).set_index("method")
    assert verdicts["passes"].to_dict() == {"sticky": False, "fades": True, "below": True, "blank": None}
    assert verdicts["step"].eq("all").all()  # the last step is judged, whatever came before
    # sticky: differences 0.7 per image (the noise cancels): the whole interval above 0 -- fails
    assert verdicts.loc["sticky", "spearman_abs_difference"] == pytest.approx(0.7)
    assert verdicts.loc["sticky", "spearman_abs_low"] > 0 and verdicts.loc["sticky", "ssim_low"] > 0
    assert verdicts.loc["sticky", "spearman_abs_randomised"] == pytest.approx(0.801875)
    assert verdicts.loc["sticky", "spearman_abs_unrelated"] == pytest.approx(0.101875)
    assert verdicts.loc["sticky", "spearman_abs_n"] == 8
    # fades: differences -2e, mean 0, the interval around 0 -- passes
    assert verdicts.loc["fades", "spearman_abs_low"] <= 0 <= verdicts.loc["fades", "spearman_abs_high"]
    # below: differences -0.1: the whole interval below 0 -- passes
    assert verdicts.loc["below", "spearman_abs_high"] < 0
    # blank: no complete Spearman pair, so no verdict, though SSIM passes
    assert (
        verdicts.loc["blank", "spearman_abs_passes"] is None and verdicts.loc["blank", "spearman_abs_n"] == 0
    )
    assert verdicts.loc["blank", "ssim_passes"]
    # judged by SSIM alone, the blank method has a verdict
    by_ssim = sanity.sanity_verdicts(_hand_table(), metrics_judged=("ssim",)).set_index("method")
    assert by_ssim["passes"].to_dict()["blank"] and "spearman_abs_passes" not in by_ssim


def test_cascade_summary_means_intervals_and_order():
    table = _hand_table()
    summary = sanity.cascade_summary(table)
    assert list(summary.columns) == [
        "model", "step_index", "step", "method", "metric", "mean", "low", "high", "n", "missing",
    ]  # fmt: skip
    assert list(dict.fromkeys(summary["step"])) == ["top", "all", sanity.UNRELATED]  # the reference last
    row = summary.set_index(["step", "method", "metric"]).loc[("all", "sticky", "spearman_abs")]
    assert (
        row["mean"] == pytest.approx(0.801875) and row["low"] <= row["mean"] <= row["high"] and row["n"] == 8
    )
    blank = summary.set_index(["step", "method", "metric"]).loc[("all", "blank", "spearman_abs")]
    assert np.isnan(blank["mean"]) and blank["n"] == 0 and blank["missing"] == 8
    constant = summary.set_index(["step", "method", "metric"]).loc[("top", "sticky", "ssim")]
    assert constant["low"] == constant["high"] == pytest.approx(0.2)  # no variation: the value itself
    assert summary.equals(sanity.cascade_summary(table))  # seeded


def test_mean_interval_is_the_projects_bootstrap_interval():
    values = np.random.default_rng(3).random(40)
    mean, low, high = statistics.mean_with_interval(values, seed=0)
    assert mean == pytest.approx(values.mean())
    assert (low, high) == pytest.approx(metrics.bootstrap_ci(values, seed=0))
    assert statistics.mean_with_interval([0.3, np.nan]) == (0.3, 0.3, 0.3)
    assert all(np.isnan(v) for v in statistics.mean_with_interval([np.nan]))


def test_rows_with_a_constant_map_are_left_out_of_summary_and_verdicts():
    table = _hand_table()
    table["constant_map"] = False
    dead = (table["method"] == "sticky") & (table["step"] == "all") & (table["index"] < 4)
    table.loc[dead, "constant_map"] = True
    table.loc[dead, "ssim"] = 0.0  # SSIM is defined for a zero map, but says nothing of the method
    table.loc[dead, ["spearman_abs", "spearman_signed", "hog"]] = np.nan
    verdicts = sanity.sanity_verdicts(table).set_index("method")
    assert verdicts.loc["sticky", "ssim_n"] == 4 and verdicts.loc["sticky", "spearman_abs_n"] == 4
    assert (
        verdicts.loc["sticky", "ssim_difference"] == pytest.approx(0.7)
        and not verdicts.loc["sticky", "passes"]
    )
    summary = sanity.cascade_summary(table).set_index(["step", "method", "metric"])
    ssim = summary.loc[("all", "sticky", "ssim")]
    assert ssim["n"] == 4 and ssim["missing"] == 4 and ssim["mean"] > 0.7
