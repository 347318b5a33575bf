"""Task 4 (:mod:`gradcam_core.tasks.user_study`): the stimuli a study folder holds, and the
analysis of ratings (signing, agreement between raters). The survey app itself is tested in
``test_study.py``, the summary tables in ``test_tables.py``.

The analysis tests use ``tests/fixtures/SYNTHETIC_responses.csv``: invented ratings, labelled
as such in the file name and in ``tests/fixtures/README.md``, used only to check the code
against hand computations and never shown as a result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats

from gradcam_core import data, maps, metrics, study, tables
from gradcam_core.tasks import user_study
from tests.helpers import image_batch, loaded_module

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# ------------------------------------------------------------------------------ stimuli


def test_stimuli_folder_records_sides_and_only_images_both_models_get_right(
    study_dir, squeezenet, mobilenet, ilsvrc_records
):
    info, manifest = study.load_study(study_dir)
    assert len(manifest) == 20 and manifest["image"].nunique() == 10
    assert set(manifest["method"]) == set(study.STUDY_METHODS)
    assert info["accurate_model"] == "mobilenet_v1_0.75" and info["other_model"] == "squeezenet1_1"
    assert info["methods"] == list(study.STUDY_METHODS) and info["seed"] == 0
    for r in manifest.to_dict("records"):
        accurate_on = "left" if r["left_model"] == "mobilenet_v1_0.75" else "right"
        assert r["accurate_side"] == accurate_on and {r["left_model"], r["right_model"]} == {
            "mobilenet_v1_0.75",
            "squeezenet1_1",
        }
        for key in ("original_file", "left_file", "right_file"):
            assert (study_dir / "images" / r[key]).is_file()
    assert 0 < (manifest["accurate_side"] == "left").sum() < 20  # randomised, not constant
    by_name = {r.name: r for r in ilsvrc_records}
    for name in manifest["image"].unique():
        record = by_name[name]
        image = data.load_rgb(record.path)
        for model in (squeezenet, mobilenet):
            assert int(model(model.preprocess([image])).argmax()) == record.label


def test_stimulus_pictures_are_the_explanations_and_the_photo_at_input_size(
    study_dir, mobilenet, ilsvrc_records
):
    manifest = study.load_study(study_dir)[1]
    first = manifest.iloc[0]
    record = next(r for r in ilsvrc_records if r.name == first["image"])
    with Image.open(study_dir / "images" / first["original_file"]) as photo:
        assert photo.size == (224, 224)  # the models' input size, not the stored 227 px
    side = first["accurate_side"]
    explainer = user_study.STIMULUS_EXPLAINERS[first["method"]](mobilenet)
    pixels = explainer.attribute_pixels(mobilenet.preprocess([data.load_rgb(record.path)]), record.label)
    expected = maps.gradient_image(pixels[0, 0].detach().numpy())
    with Image.open(study_dir / "images" / first[f"{side}_file"]) as picture:
        assert np.array_equal(np.asarray(picture), expected)


def test_stimuli_are_reproducible_with_the_seed(
    study_dir, squeezenet, mobilenet, ilsvrc_records, tmp_path, capsys
):
    again = user_study.make_stimuli(
        mobilenet, squeezenet, ilsvrc_records[:80], tmp_path, n_images=10, seed=0, progress=False
    )
    pd.testing.assert_frame_equal(again, study.load_study(study_dir)[1])
    assert (tmp_path / "images" / "s001_left.png").read_bytes() == (
        study_dir / "images" / "s001_left.png"
    ).read_bytes()
    assert (
        "20 stimuli (10 images both models classify correctly x 2 methods) written to the study folder "
        f"{tmp_path.as_posix()}"
    ) in capsys.readouterr().out


def test_stimuli_per_side(study_dir):
    manifest = study.load_study(study_dir)[1]
    counts = user_study.stimuli_per_side(manifest)
    assert counts["stimuli"].sum() == 20 and list(counts.columns) == ["method", "accurate_side", "stimuli"]
    gb_left = counts[(counts["method"] == "guided-backprop") & (counts["accurate_side"] == "left")]["stimuli"]
    expected = ((manifest["method"] == "guided-backprop") & (manifest["accurate_side"] == "left")).sum()
    assert gb_left.item() == expected


def test_make_stimuli_refuses_unknown_methods_and_different_input_sizes(squeezenet, ilsvrc_records, tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown study method\(s\) \['occlusion'\]; known: guided-backprop"
    ):
        user_study.make_stimuli(squeezenet, squeezenet, ilsvrc_records[:2], tmp_path, methods=("occlusion",))
    small = loaded_module(torch.nn.Identity(), [], name="small", input_size=32)
    with pytest.raises(
        ValueError, match=r"different input sizes \(224 px for squeezenet1_1, 32 px for small\)"
    ):
        user_study.make_stimuli(squeezenet, small, ilsvrc_records[:2], tmp_path)


def test_both_correct_draws_from_images_every_model_gets_right(squeezenet, mobilenet, ilsvrc_records):
    records = ilsvrc_records[:12]
    right = []
    for model in (squeezenet, mobilenet):
        with torch.no_grad():
            predicted = model(image_batch(model, records, len(records))).argmax(1).tolist()
        right.append({r.name for r, p in zip(records, predicted) if p == r.label})
    good = [r.name for r in records if r.name in right[0] & right[1]]
    assert len(good) >= 4
    chosen = user_study.both_correct({"s": squeezenet, "m": mobilenet}, records, 3, seed=2)
    order = sorted(np.random.default_rng(2).permutation(len(good))[:3])
    assert [r.name for r in chosen] == [good[i] for i in order]


@pytest.fixture
def synthetic():
    return user_study.signed_ratings(study.read_responses(FIXTURES / "SYNTHETIC_responses.csv"), "vgg16")


def test_signs_are_mapped_to_the_more_accurate_model(synthetic):
    first = synthetic.iloc[0]  # vgg16 on the left, rating -2: the accurate model trusted much more
    assert first["left_model"] == "vgg16" and first["rating"] == -2 and first["signed"] == 2
    right = synthetic[synthetic["right_model"] == "vgg16"]
    assert (right["signed"] == right["rating"]).all()
    left = synthetic[synthetic["left_model"] == "vgg16"]
    assert (left["signed"] == -left["rating"]).all() and len(left) + len(right) == len(synthetic)


def test_responses_without_the_accurate_model_are_refused(synthetic):
    with pytest.raises(study.StudyError, match="some responses compare models without 'resnet50'"):
        user_study.signed_ratings(synthetic, "resnet50")


def test_load_responses_reads_signs_and_counts(capsys):
    assert user_study.load_responses(None, "vgg16") is None
    assert "this report holds 0 real ratings" in capsys.readouterr().out
    signed = user_study.load_responses(FIXTURES / "SYNTHETIC_responses.csv", "vgg16")
    raw = pd.read_csv(FIXTURES / "SYNTHETIC_responses.csv")
    assert len(signed) == len(raw) and "signed" in signed
    assert (
        f"{len(raw)} real ratings from {raw['rater'].nunique()} raters on "
        f"{raw['stimulus'].nunique()} stimuli, read from SYNTHETIC_responses.csv"
    ) in capsys.readouterr().out


def test_krippendorff_alpha_known_cases():
    perfect = pd.DataFrame(
        {
            "rater": ["a", "a", "a", "b", "b", "b"],
            "stimulus": ["s1", "s2", "s3"] * 2,
            "signed": [2, 0, -1, 2, 0, -1],
        }
    )
    assert user_study.rater_agreement(perfect) == pytest.approx(1.0)
    one_rater = perfect[perfect["rater"] == "a"]
    assert np.isnan(user_study.rater_agreement(one_rater))
    # Krippendorff (2011) ordinal example values through the package equal its direct call
    import krippendorff

    opposite = perfect.assign(signed=[2, 0, -2, -2, 0, 2])
    expected = krippendorff.alpha(
        reliability_data=[[2, 0, -2], [-2, 0, 2]],
        level_of_measurement="ordinal",
        value_domain=[-2, -1, 0, 1, 2],
    )
    assert user_study.rater_agreement(opposite) == pytest.approx(expected) and expected < 0


def test_rater_agreement_pivots_raters_by_stimuli_with_missing_ratings():
    import krippendorff

    signed = pd.DataFrame(
        {
            "rater": ["a", "a", "b", "b", "b", "c"],
            "stimulus": ["s1", "s2", "s1", "s2", "s3", "s3"],
            "signed": [1, -2, 1, -1, 2, 2],
        }
    )
    matrix = [[1, -2, np.nan], [1, -1, 2], [np.nan, np.nan, 2]]
    expected = krippendorff.alpha(
        reliability_data=matrix, level_of_measurement="ordinal", value_domain=study.RATINGS
    )
    assert user_study.rater_agreement(signed) == pytest.approx(expected)


# ------------------------------------------------------------------------------ per-rater test


def _ratings(by_rater: dict, method: str = "guided-backprop") -> pd.DataFrame:
    """Signed ratings of hand-made raters: ``{rater: [signed ratings]}`` for one method."""
    rows = [
        {"rater": rater, "stimulus": f"{method}{i}", "method": method, "signed": value}
        for rater, values in by_rater.items()
        for i, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_per_rater_test_by_hand():
    gb = _ratings({"a": [2, 1, 0], "b": [-1, 0], "c": [2, 2, 1, 1]})  # rater means 1, -0.5, 1.5
    ggc = _ratings({"a": [1, 1], "b": [0, 1], "c": [2]}, "guided-grad-cam")  # 1, 0.5, 2
    out = user_study.per_rater_test(pd.concat([gb, ggc])).set_index("method")
    assert list(out.reset_index().columns) == user_study.PER_RATER_COLUMNS
    assert out.index.tolist() == [
        "guided-backprop",
        "guided-grad-cam",
        "guided-grad-cam minus guided-backprop",
    ]
    row = out.loc["guided-backprop"]
    assert row["raters"] == 3 and row["ratings"] == 9
    # the mean of rater means (0.667), not the mean of the 9 ratings (8 / 9 = 0.889)
    assert row["mean of rater means"] == pytest.approx(0.667)
    # |means| 0.5 < 1 < 1.5 rank 1, 2, 3: W- = 1; exact null of W over 2^3 sign patterns: p = 2 * 2/8
    assert row["Wilcoxon p"] == pytest.approx(0.5) == stats.wilcoxon([1.0, -0.5, 1.5]).pvalue
    low, high = metrics.bootstrap_ci(np.array([1.0, -0.5, 1.5]), seed=0)
    assert (row["95% CI low"], row["95% CI high"]) == (round(low, 3), round(high, 3))
    assert -0.5 <= row["95% CI low"] < 0.667 < row["95% CI high"] <= 1.5
    # paired per-rater differences 1 - 1 = 0, 0.5 - (-0.5) = 1, 2 - 1.5 = 0.5; the zero is dropped
    diff = out.loc["guided-grad-cam minus guided-backprop"]
    assert diff["raters"] == 3 and diff["ratings"] == 14
    assert diff["mean of rater means"] == pytest.approx(0.5)
    assert diff["Wilcoxon p"] == pytest.approx(stats.wilcoxon([1.0, 0.5]).pvalue) == pytest.approx(0.5)
    assert 0.0 <= diff["95% CI low"] <= 0.5 <= diff["95% CI high"] <= 1.0


def test_one_keen_rater_is_significant_per_rating_but_not_per_rater():
    # 4 raters, 40 ratings each: "keen" always trusts the accurate model much more; the others
    # have small means of both signs. Counting 160 ratings as independent finds an effect; the 4
    # raters (at best p = 2/16 with 4) do not.
    signed = _ratings(
        {
            "keen": [2] * 40,
            "b": [1] * 15 + [-1] * 25,  # -0.25
            "c": [1] * 25 + [-1] * 15,  # +0.25
            "d": [1] * 10 + [-1] * 30,  # -0.5
        }
    )
    per_rating_p = stats.wilcoxon(signed["signed"].to_numpy(np.float64)).pvalue
    assert per_rating_p < 1e-3
    assert tables.trust_summary(signed).loc[0, "Wilcoxon p (vs 0)"] == pytest.approx(per_rating_p)
    row = user_study.per_rater_test(signed).iloc[0]
    assert row["raters"] == 4 and row["ratings"] == 160
    assert row["Wilcoxon p"] == pytest.approx(float(f"{stats.wilcoxon([2, -0.25, 0.25, -0.5]).pvalue:.3g}"))
    assert row["Wilcoxon p"] > 0.5
    assert row["95% CI low"] < 0 < row["95% CI high"]


def test_bootstrap_resamples_raters_not_ratings():
    # every rater's mean is 0.5 though the ratings vary: resampling raters cannot move the mean
    same = _ratings({"a": [1, 0], "b": [2, -1], "c": [1, 0, 1, 0]})
    row = user_study.per_rater_test(same).iloc[0]
    assert row["95% CI low"] == row["95% CI high"] == row["mean of rater means"] == 0.5
    assert row["Wilcoxon p"] == pytest.approx(stats.wilcoxon([0.5, 0.5, 0.5]).pvalue)
    per_rating = tables.trust_summary(same).loc[0, "95% CI"]
    assert per_rating != "0.500-0.500"  # resampling ratings would vary
    # two raters of means 0 and 1: resampled means are 0, 0.5 or 1 (p = 1/4, 1/2, 1/4), so the
    # 95 % percentile interval is [0, 1] whatever the ratings inside each rater
    two = _ratings({"a": [1, -1], "b": [1, 1, 2, 0]})
    row = user_study.per_rater_test(two, n_resamples=4000).iloc[0]
    assert (row["95% CI low"], row["95% CI high"]) == (0.0, 1.0)
    assert row["mean of rater means"] == 0.5
    # one rater: no spread between raters to resample, no interval
    one = user_study.per_rater_test(_ratings({"a": [2, 1, 2]})).iloc[0]
    assert one["raters"] == 1 and np.isnan(one["95% CI low"]) and np.isnan(one["95% CI high"])


def test_per_rater_test_without_zeros_or_differences():
    zeros = user_study.per_rater_test(_ratings({"a": [1, -1], "b": [0, 0]})).iloc[0]
    assert zeros["mean of rater means"] == 0.0 and np.isnan(zeros["Wilcoxon p"])
    gb = _ratings({"a": [1], "b": [2]})
    ggc = _ratings({"a": [1], "c": [0]}, "guided-grad-cam")
    out = user_study.per_rater_test(pd.concat([gb, ggc])).set_index("method")
    # only rater a rated both methods: one paired difference, 2 ratings
    diff = out.loc["guided-grad-cam minus guided-backprop"]
    assert diff["raters"] == 1 and diff["ratings"] == 2 and diff["mean of rater means"] == 0.0
    assert user_study.per_rater_test(pd.concat([gb, ggc]), differences=()).shape[0] == 2


def test_per_rater_test_on_the_synthetic_fixture(synthetic):
    out = user_study.per_rater_test(synthetic)
    assert out["method"].tolist() == [
        "guided-backprop",
        "guided-grad-cam",
        "guided-grad-cam minus guided-backprop",
    ]
    numbers = out.drop(columns="method").to_numpy(np.float64)
    assert np.isfinite(numbers).all()
    assert out["raters"].tolist() == [4, 4, 4] and out["ratings"].tolist() == [24, 24, 48]
    assert (
        (out["95% CI low"] <= out["mean of rater means"]) & (out["mean of rater means"] <= out["95% CI high"])
    ).all()
    assert ((out["Wilcoxon p"] > 0) & (out["Wilcoxon p"] <= 1)).all()
    means = synthetic.groupby(["method", "rater"])["signed"].mean()
    gb = means["guided-backprop"].to_numpy()
    assert out.loc[0, "mean of rater means"] == pytest.approx(round(gb.mean(), 3))
    assert out.loc[0, "Wilcoxon p"] == pytest.approx(stats.wilcoxon(gb).pvalue, rel=1e-2)
    difference = means["guided-grad-cam"] - means["guided-backprop"]
    assert out.loc[2, "mean of rater means"] == pytest.approx(round(difference.mean(), 3))
    pd.testing.assert_frame_equal(out, user_study.per_rater_test(synthetic))  # seeded


def test_trust_summary_by_rater_reports_the_per_rater_test(synthetic):
    summary = tables.trust_summary_by_rater(synthetic)
    assert list(summary.columns) == tables.TRUST_BY_RATER_COLUMNS
    test = user_study.per_rater_test(synthetic)
    assert summary["Wilcoxon p (rater means vs 0)"].tolist() == test["Wilcoxon p"].tolist()
    assert summary["95% CI (raters resampled)"].tolist() == [
        f"{low:.3f}{' to ' if low < 0 or high < 0 else '-'}{high:.3f}"
        for low, high in zip(test["95% CI low"], test["95% CI high"])
    ]
    gb = synthetic[synthetic["method"] == "guided-backprop"]["signed"]
    assert summary.loc[0, "mean"] == pytest.approx(round(gb.mean(), 3))
    assert summary.loc[0, "std"] == pytest.approx(round(gb.std(ddof=1), 3))
    assert np.isnan(summary.loc[2, "mean"])  # the paired difference has no per-rating mean
    versus = tables.trust_vs_paper(summary, ["guided-grad-cam", "guided-backprop"])
    assert versus["ratings"].tolist() == [24, 24]
    empty = tables.trust_summary_by_rater(None)
    assert empty.empty and list(empty.columns) == tables.TRUST_BY_RATER_COLUMNS


# ------------------------------------------------------------------------------ the design


def test_pruning_sweep_measures_accuracy_per_fraction(ilsvrc_records):
    from gradcam_core import models

    records = ilsvrc_records[:12]
    sweep = user_study.pruning_sweep(records, fractions=(0.3, 0.9), batch_size=5, progress=False)
    assert sweep["fraction"].tolist() == [0.0, 0.3, 0.9] and (sweep["images"] == 12).all()
    for fraction, correct in zip(sweep["fraction"], sweep["correct"]):
        model = models.load_model("squeezenet1_1", device="cpu")
        models.prune_smallest_weights(model.module, fraction)
        with torch.no_grad():
            predicted = model(model.preprocess([data.load_rgb(r.path) for r in records])).argmax(1)
        assert correct == int((predicted == torch.tensor([r.label for r in records])).sum())
    assert sweep["top1"].tolist() == pytest.approx((100 * sweep["correct"] / 12).tolist())
    assert sweep["gap"].iloc[0] == 0 and sweep["gap"].iloc[2] == sweep["top1"].iloc[0] - sweep["top1"].iloc[2]
    assert (sweep["low"] <= sweep["top1"]).all() and (sweep["top1"] <= sweep["high"]).all()


def test_chosen_fraction_is_the_closest_gap():
    sweep = pd.DataFrame({"fraction": [0.0, 0.1, 0.2, 0.3], "gap": [0.0, 5.0, 13.0, 18.0]})
    assert user_study.chosen_fraction(sweep, 15.1) == 0.2
    assert user_study.chosen_fraction(sweep, 16.0) == 0.3
    assert user_study.chosen_fraction(sweep, 15.5) == 0.2  # 2.5 from both: the first
    assert user_study.documented_gap() == pytest.approx(71.592 - 56.522)


def test_texture_match_by_hand():
    textures = pd.DataFrame(
        {
            "pair": ["p"] * 4 + ["q"] * 4,
            "method": ["m"] * 8,
            "model": ["a", "b", "a", "b"] * 2,
            "high_frequency_energy": [0.10, 0.11, 0.10, 0.13, 0.1, 0.3, 0.1, 0.3],
        }
    )
    match = user_study.texture_match(textures)
    assert match[["pair", "model A", "model B"]].values.tolist() == [["p", "a", "b"], ["q", "a", "b"]]
    assert match["energy B"].tolist() == pytest.approx([0.12, 0.3])
    assert match["ratio"].tolist() == pytest.approx([1.2, 3.0]) and match["matched"].tolist() == [True, False]
    with pytest.raises(ValueError, match="p, m: expected pictures of two models"):
        user_study.texture_match(textures[textures["model"] == "a"])


def test_mobilenets_checkerboard_is_told_apart_and_the_pruned_pair_is_not(
    study_dir, squeezenet, ilsvrc_records, tmp_path
):
    """The confound the pair was chosen against, measured on real stimuli: MobileNet's Guided
    Backprop pictures carry far more high-frequency energy than SqueezeNet's; SqueezeNet and its
    pruned copy stay within the tolerance."""
    from gradcam_core import models

    pruned = models.load_model("squeezenet1_1-pruned", device="cpu")
    fair = tmp_path / "fair"
    user_study.make_stimuli(squeezenet, pruned, ilsvrc_records[:80], fair, n_images=4, seed=0, progress=False)
    textures = user_study.stimulus_textures({"earlier": study_dir, "fair": fair})
    assert set(textures["pair"]) == {"earlier", "fair"} and (textures["high_frequency_energy"] > 0).all()
    match = user_study.texture_match(textures).set_index(["pair", "method"])
    assert not match.loc[("earlier", "guided-backprop"), "matched"]
    assert match.loc[("earlier", "guided-backprop"), "ratio"] > 1.3
    assert (
        match.loc[("fair", "guided-backprop"), "matched"]
        and match.loc[("fair", "guided-grad-cam"), "matched"]
    )
    first = user_study.same_image_stimuli([study_dir, fair], "guided-backprop")
    assert [len(rows) for rows in first] == [1, 1] and (first[0]["method"] == "guided-backprop").all()


def test_power_analysis_rows_and_text():
    power = user_study.power_analysis(sds=(0.5, 1.0))
    assert power["effect"].unique().tolist() == [
        "guided-backprop trust (against 0)",
        "guided-grad-cam trust (against 0)",
        user_study.CONTRAST_EFFECT,
    ]
    contrast = power[power["effect"] == user_study.CONTRAST_EFFECT]
    assert contrast["paper's value"].tolist() == pytest.approx([0.27, 0.27])
    # d = 0.54 and 0.27: the t-test needs 29 and 110 raters (G*Power), the signed-rank test 1/(3/pi) more
    assert contrast["raters needed"].tolist() == [31, 116]
    text = user_study.power_text(user_study.power_analysis(), sd=0.75)
    assert (
        "8 raters detect the paper's smaller mean trust (1.00)" in text and "66 raters its contrast" in text
    )
    assert (
        "The paper's 54 workers suffice for that contrast at the assumed spreads of 0.5 (of 0.5, 0.75, 1)."
        in text
    )
