"""Tables for the page (:mod:`gradcam_core.tables`) on hand-made per-image tables whose answers
are worked out by hand.

The trust-study tests use ``tests/fixtures/SYNTHETIC_responses.csv``: invented ratings, labelled
as such in the file name and in ``tests/fixtures/README.md``, used only to check the code
against hand computations and never shown as a result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from gradcam_core import metrics, standins, statistics, study, tables, training
from gradcam_core.tasks import fidelity, user_study
from tests.helpers import random_standin

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _wilson_cell(successes: int, n: int) -> str:
    """The table cell of an error of ``successes`` out of ``n`` with its Wilson interval, in %."""
    low, high = statistics.proportion_ci(successes, n)
    d = statistics.digits_for(100 * low, 100 * high)  # the interval's precision (test_statistics)
    return f"{100 * successes / n:.{d}f} ({100 * low:.{d}f}-{100 * high:.{d}f})"


def test_error_with_ci_is_a_wilson_interval():
    error, low, high = tables.error_with_ci([True, False, False, True])
    assert error == 50.0
    expected_low, expected_high = statistics.proportion_ci(2, 4)
    assert (low, high) == (100 * expected_low, 100 * expected_high) and low < 50.0 < high
    error, low, high = tables.error_with_ci([True] * 5)  # no error: the interval still has width
    assert error == 0.0 and low == 0.0 and 30 < high < 50


# ------------------------------------------------------------------------------ Task 1


def _localization_table():
    # 4 images, one model, grad-cam at two thresholds, c-mwp by grab-cut on the first two images
    # (top-1 only: no top-5 decision) and the full-image baseline
    rows = []
    for i, (c1, c5, l1_15, l5_15, l1_30) in enumerate(
        [(1, 1, 1, 1, 0), (1, 1, 0, 1, 0), (0, 1, 0, 0, 0), (0, 0, 0, 0, 0)]
    ):
        base = {"model": "m", "image": f"i{i}", "label": i, "cls_top1": bool(c1), "cls_topk": bool(c5)}
        threshold = {"method": "grad-cam", "boxing": "threshold"}
        rows.append(
            {**base, **threshold, "threshold": 0.15, "loc_top1": bool(l1_15), "loc_topk": bool(l5_15)}
        )
        rows.append({**base, **threshold, "threshold": 0.30, "loc_top1": bool(l1_30), "loc_topk": False})
        if i < 2:
            rows.append(
                {**base, "method": "c-mwp", "boxing": "grab-cut", "threshold": np.nan, "loc_top1": False}
                | {"loc_topk": np.nan}
            )
        rows.append(
            {
                **base,
                "method": "full-image",
                "boxing": "fixed",
                "threshold": np.nan,
                "loc_top1": False,
                "loc_topk": bool(c5),
            }
        )
    return pd.DataFrame(rows)


def test_localization_summary_errors_by_hand():
    summary = tables.localization_summary(_localization_table(), 0.15).set_index("method")
    # cls top-1 err 2/4, cls top-5 err 1/4, loc top-1 err 3/4, loc top-5 err 2/4, Wilson intervals
    assert summary.loc["grad-cam", "cls top-1 err"] == _wilson_cell(2, 4)
    assert summary.loc["grad-cam", "cls top-5 err"] == _wilson_cell(1, 4)
    assert summary.loc["grad-cam", "loc top-1 err"] == _wilson_cell(3, 4)
    assert summary.loc["grad-cam", "loc top-5 err"] == _wilson_cell(2, 4)
    assert summary.loc["full-image", "loc top-1 err"] == _wilson_cell(4, 4)
    assert summary.loc["full-image", "loc top-1 err"].startswith("100 (51-100)")
    assert summary.loc["grad-cam", "images"] == 4 and summary.loc["full-image", "images"] == 4
    assert (
        summary.loc["grad-cam", "boxes"] == "15% of max" and summary.loc["full-image", "boxes"] == "fixed box"
    )
    cmwp = summary.loc["c-mwp"]
    assert cmwp["boxes"] == "grab-cut" and cmwp["images"] == 2 and cmwp["loc top-1 err"] == _wilson_cell(2, 2)
    assert cmwp["loc top-5 err"] == "n/a"  # top-1 only: no top-5 decision was made


def test_threshold_sweep_by_hand():
    sweep = tables.threshold_sweep(_localization_table())
    assert set(sweep["method"]) == {"grad-cam"}  # baselines and grab-cut rows have no threshold
    sweep = sweep.set_index("threshold")
    assert sweep.loc[0.15, "loc top-1 err"] == 75.0 and sweep.loc[0.30, "loc top-1 err"] == 100.0
    assert sweep.loc[0.15, "loc top-5 err"] == 50.0 and sweep.loc[0.30, "loc top-5 err"] == 100.0


def test_threshold_sweep_top1_pivots_thresholds_into_rows():
    sweep = tables.threshold_sweep(
        pd.concat([_localization_table(), _localization_table().assign(model="n")])
    )
    pivot = tables.threshold_sweep_top1(sweep)
    assert list(pivot.index) == [0.15, 0.30] and list(pivot.columns) == [("m", "grad-cam"), ("n", "grad-cam")]
    assert pivot.loc[0.15, ("m", "grad-cam")] == 75.0 and pivot.loc[0.30, ("n", "grad-cam")] == 100.0


def test_thresholds_tuned_on_the_first_images_and_reported_on_the_rest():
    table = _localization_table()
    # tuning images i0, i1: top-1 err 50 % at 0.15, 100 % at 0.30 -> 0.15
    tuned = tables.tune_thresholds(table, 2)
    assert tuned.to_dict("records") == [
        {"model": "m", "method": "grad-cam", "threshold": 0.15, "tuning loc top-1 err": 50.0}
    ]
    rows = tables.tuned_table(table, tuned, 2)
    assert set(rows["image"]) == {"i2", "i3"}  # the test split only
    assert sorted(rows["method"]) == ["full-image", "full-image", "grad-cam", "grad-cam"]
    assert set(rows.loc[rows["method"] == "grad-cam", "threshold"]) == {0.15}
    summary = tables.tuned_summary(rows).set_index("method")
    assert summary.loc["grad-cam", "loc top-1 err"] == _wilson_cell(2, 2)
    assert summary.loc["grad-cam", "boxes"] == "15% of max" and summary.loc["grad-cam", "images"] == 2
    # a tie goes to the lower threshold
    tie = table.assign(loc_top1=False)
    assert tables.tune_thresholds(tie, 2)["threshold"].item() == 0.15


def _swept_on_a_sample():
    """The Task 1 table of 4 images with the 0.30 threshold on the first 3 only, as a run with
    ``sweep_images=3`` makes it (the headline 0.15 on all)."""
    table = _localization_table()
    return table[~((table["image"] == "i3") & (table["threshold"] == 0.30))].reset_index(drop=True)


def test_the_sweep_and_the_tuning_use_the_sweeps_sample():
    table = _swept_on_a_sample()
    assert list(pd.unique(tables.sweep_sample(table)["image"])) == ["i0", "i1", "i2"]
    assert tables.sweep_sample(_localization_table()).equals(_localization_table())  # swept on all
    baselines_only = table[table["boxing"] == "fixed"].assign(model="n")  # a model without a sweep
    assert len(tables.sweep_sample(pd.concat([table, baselines_only]))) == len(tables.sweep_sample(table)) + 4
    sweep = tables.threshold_sweep(table).set_index("threshold")
    # on i0-i2: top-1 err 2/3 at 0.15 (not 3/4 as on all four images), 3/3 at 0.30
    assert sweep.loc[0.15, "loc top-1 err"] == 66.67 and sweep.loc[0.30, "loc top-1 err"] == 100.0
    rows = tables.tuned_table(table, tables.tune_thresholds(table, 2), 2)
    assert set(rows["image"]) == {"i2"}  # the sample's images after the tuning ones


def test_sweep_sample_check_by_hand():
    check = tables.sweep_sample_check(_swept_on_a_sample(), 0.15).set_index("method")
    assert list(check.index) == ["grad-cam"]  # thresholded methods only
    row = check.loc["grad-cam"]
    assert (row["sample images"], row["all images"]) == (3, 4)
    assert row["sample loc top-1 err"] == _wilson_cell(2, 3) and row["all images loc top-1 err"] == 75.0
    low, high = statistics.proportion_ci(2, 3)
    assert row["within"] == bool(100 * low <= 75 <= 100 * high)
    assert row["within"]  # 75 on all four lies within the sample's 67 (21-94)


def test_paired_comparison_by_hand():
    table = _localization_table()
    wrong = table.assign(loc_top1=~table["loc_top1"].astype(bool))
    out = tables.paired_comparison(
        wrong, {"method": "grad-cam", "threshold": 0.15}, {"method": "full-image"}, "loc_top1", "x"
    ).iloc[0]
    # grad-cam wrong on i1, i2, i3; full-image wrong everywhere: differences -1, 0, 0, 0
    assert out["images"] == 4 and out["a"] == 75.0 and out["b"] == 100.0
    diff = statistics.paired_difference([0, 1, 1, 1], [1, 1, 1, 1])
    assert out["a - b"] == f"-25.0 ({100 * diff.low:.1f} to {100 * diff.high + 0.0:.1f})"
    assert out["McNemar p"] == "1"  # one discordant pair
    # pairs only the images both sides have: c-mwp ran on i0 and i1
    out = tables.paired_comparison(
        wrong, {"method": "grad-cam", "threshold": 0.15}, {"method": "c-mwp"}, "loc_top1", "y"
    ).iloc[0]
    assert out["images"] == 2 and out["a"] == 50.0 and out["b"] == 100.0


def test_localization_comparisons_skip_methods_that_did_not_run():
    out = tables.localization_comparisons(_localization_table())
    assert list(out["comparison"]) == ["grad-cam 15 % vs c-mwp grab-cut"]
    assert out.iloc[0]["grad-cam err"] == 50.0 and out.iloc[0]["baseline err"] == 100.0


def test_classification_beside_the_documented_error():
    table = _localization_table().assign(model="squeezenet1_1")
    out = tables.classification_vs_documented(table).iloc[0]
    assert out["images"] == 4 and out["top-1 err here"] == _wilson_cell(2, 4)
    assert out["top-1 err, all 50,000 (documented)"] == "41.8"  # torchvision: 58.178 % top-1
    assert (
        tables.classification_vs_documented(_localization_table()).iloc[0][
            "top-5 err, all 50,000 (documented)"
        ]
        == "n/a"
    )


def test_localization_vs_paper_puts_the_references_beside_ours():
    summary = tables.localization_summary(_localization_table(), 0.15)
    table = tables.localization_vs_paper(summary)
    ours = table[table["source"] == "this report (4 ILSVRC val images)"]
    assert ours["method"].tolist() == ["grad-cam (15% of max)"]  # baselines are not compared
    assert ours["loc top-1 err"].item() == summary.set_index("method").loc["grad-cam", "loc top-1 err"]
    assert (
        table[table["source"] == "this report (2 ILSVRC val images)"]["method"].item() == "c-mwp (grab-cut)"
    )
    paper = table[(table["source"] == "paper Table 1 (secondary)") & (table["model"] == "vgg16")]
    assert paper["loc top-1 err"].item() == "56.51" and paper["cls top-5 err"].item() == "10.89"
    assert paper["method"].item() == "grad-cam (15% of max)"
    cmwp = table[table["source"].str.startswith("paper") & table["method"].str.startswith("c-mwp")]
    assert cmwp["method"].item() == "c-mwp (grab-cut)" and cmwp["loc top-1 err"].item() == "70.92"
    seed = table[(table["source"] == "DD2412 reproduction") & (table["model"] == "googlenet")]
    assert seed["loc top-5 err"].item() == "45.44" and seed["method"].item() == "grad-cam (15% of max)"


# ------------------------------------------------------------------------------ Task 2


def _pointing_table():
    rows = []
    # image a: gt class 1 predicted at rank 1 with raw max 2.0, hit; class 2 predicted, raw max 0.5
    # image b: gt class 3 not hit, predicted at rank 2 with raw max 1.0; class 4 at rank 1, raw max 3.0
    for image, label, cue, rank, raw, hit in [
        ("a", 1, 1, 1, 2.0, True),
        ("a", 1, 2, 2, 0.5, False),
        ("b", 3, 3, 2, 1.0, False),
        ("b", 3, 4, 1, 3.0, False),
    ]:
        rows.append(
            {
                "model": "m",
                "image": image,
                "label": label,
                "coverage": 0.1 if image == "a" else 0.6,
                "difficult": image == "a",
                "method": "grad-cam",
                "cue": cue,
                "is_gt": cue == label,
                "rank": rank,
                "raw_max": raw,
                "hit": hit,
            }
        )
    return pd.DataFrame(rows)


def test_pointing_summary_and_recall_curve_by_hand():
    table = _pointing_table()
    summary = tables.pointing_summary(table).set_index(["images", "method"])
    assert summary.loc[("all", "grad-cam"), "accuracy"] == _wilson_cell(1, 2)
    assert summary.loc[("difficult", "grad-cam"), "accuracy"] == _wilson_cell(1, 1)
    assert summary.loc[("difficult", "grad-cam"), "n"] == 1
    curve = tables.pointing_recall_curve(table, [0.0, 1.5, 5.0]).set_index("threshold")
    # t=0: all kept: right = a/1 (kept, hit) only -> 1/4; recall 2/2
    # t=1.5: kept a/1 (hit) and b/4 (absent, kept: wrong); rejected a/2 (absent: right),
    #        b/3 (gt: wrong) -> 2/4; recall 1/2
    # t=5: all rejected: right = the two absent classes -> 2/4; recall 0
    assert curve["accuracy"].tolist() == [25.0, 50.0, 50.0]
    assert curve["recall"].tolist() == [100.0, 50.0, 0.0]
    assert tables.reject_all_accuracy(table).to_dict() == {"m": 50.0}


def test_pointing_summary_mean_per_class_accuracy_by_hand():
    # ground-truth cues only: class 1 hit 2 of 3 times, class 3 missed once; the centre baseline
    # hits every image; a predicted (not ground-truth) cue does not count
    rows = [
        ("a", 1, "grad-cam", True, True),
        ("b", 1, "grad-cam", True, True),
        ("c", 1, "grad-cam", True, False),
        ("d", 3, "grad-cam", True, False),
        ("d", 3, "grad-cam", False, True),
        *[(image, label, "centre", True, True) for image, label in (("a", 1), ("b", 1), ("c", 1), ("d", 3))],
    ]
    table = pd.DataFrame(rows, columns=["image", "label", "method", "is_gt", "hit"]).assign(
        model="m", difficult=False
    )
    summary = tables.pointing_summary(table).set_index(["images", "method"]).loc["all"]
    gradcam = summary.loc["grad-cam"]
    assert gradcam["n"] == 4 and gradcam["accuracy"] == _wilson_cell(2, 4)
    # per class: 2/3 and 0/1 -> mean 33.3 %
    low, high = metrics.bootstrap_ci(np.array([2 / 3, 0.0]))
    assert (
        gradcam["mean per-class accuracy"] == f"33 ({100 * low:.0f}-{100 * high:.0f})"
    )  # half-width 33: no decimal
    assert summary.loc["centre", "accuracy"] == _wilson_cell(4, 4)


def test_pointing_comparisons_pair_images():
    table = _pointing_table()
    centre = table[table["is_gt"]].assign(method="centre", hit=[False, True])
    out = tables.pointing_comparisons(pd.concat([table, centre], ignore_index=True)).set_index("comparison")
    both = out.loc["grad-cam vs centre, all images"]
    # grad-cam hits a, misses b; centre misses a, hits b: difference 0, McNemar p 1
    assert both["images"] == 2 and both["grad-cam (%)"] == 50.0 and both["baseline (%)"] == 50.0
    assert both["McNemar p"] == "1"
    assert out.loc["grad-cam vs centre, difficult images", "images"] == 1
    assert not any("c-mwp" in label for label in out.index)  # c-mwp did not run


def test_a_method_run_on_the_difficult_images_only_has_no_all_images_row():
    table = _pointing_table()
    cmwp = table[table["is_gt"] & table["difficult"]].assign(method="c-mwp", hit=False)
    both = pd.concat([table, cmwp], ignore_index=True)
    out = tables.pointing_comparisons(both).set_index("comparison")
    assert list(out.index) == ["grad-cam vs c-mwp, difficult images"]
    assert out.iloc[0]["difference (pp)"] == "100.0 (100.0-100.0)" and out.iloc[0]["images"] == 1
    summary = tables.pointing_summary(both).set_index(["images", "method"])
    assert ("difficult", "c-mwp") in summary.index and ("all", "c-mwp") not in summary.index


def test_pointing_vs_paper_rows():
    table = _pointing_table()
    curve = tables.pointing_recall_curve(table, [0.0, 1.5, 5.0])
    out = tables.pointing_vs_paper(curve, table)
    ours = out[out["source"].str.startswith("this report")]
    assert ours.iloc[0]["accuracy (%)"].startswith("50.00 (best threshold; recall 50.0 %)")
    assert ours.iloc[1]["accuracy (%)"] == "50.00" and ours.iloc[1]["method"] == "none (trivial)"
    paper = out[out["source"].str.startswith("paper Sec. 4.3, COCO val")].set_index("method")
    assert paper.loc["grad-cam", "accuracy (%)"] == "70.58" and paper.loc["c-mwp", "accuracy (%)"] == "60.30"
    seed = out[out["source"].str.startswith("DD2412")].set_index("model")
    assert seed.loc["vgg16", "accuracy (%)"] == "86.42"


def test_recall_curve_with_quantile_thresholds_and_its_excerpt():
    curve = tables.pointing_recall_curve(_pointing_table(), 41)
    raw = np.array([2.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(curve["threshold"], np.quantile(raw, np.linspace(0, 1, 41)).round(2))
    assert len(curve) == 41 and curve["recall"].iloc[0] == 100.0 and curve["recall"].iloc[-1] == 0.0
    both = pd.concat([curve, curve.assign(model="n")], ignore_index=True)
    excerpt = tables.curve_excerpt(both, rows=8)  # every 41 // 8 = 5th point: 0, 5, ..., 40
    assert len(excerpt) == 2 * 9
    np.testing.assert_array_equal(excerpt.loc["m"]["threshold"], curve["threshold"].iloc[::5])


# ------------------------------------------------------------------------------ Task 3


def _correlation_table():
    return pd.DataFrame(
        {
            "model": "m",
            "image": ["a", "b", "c", "a", "b", "c"],
            "method": ["grad-cam"] * 3 + ["guided-backprop"] * 3,
            "resolution": "56",
            "spearman": [0.1, 0.3, np.nan, -0.2, 0.0, 0.2],
        }
    )


def test_correlation_summary_and_vs_paper_by_hand():
    summary = tables.correlation_summary(_correlation_table()).set_index("method")
    assert summary.loc["grad-cam", "images"] == 2  # the constant map's NaN is dropped
    assert summary.loc["grad-cam", "mean"] == 0.2 and summary.loc["grad-cam", "std"] == round(
        np.std([0.1, 0.3], ddof=1), 3
    )
    assert summary.loc["guided-backprop", "mean"] == 0.0 and summary.loc["guided-backprop", "std"] == 0.2
    low, high = metrics.bootstrap_ci(np.array([-0.2, 0.0, 0.2]))
    assert summary.loc["guided-backprop", "95% CI"] == f"{low:.3f} to {high:.3f}"
    paper = tables.correlation_vs_paper(summary.reset_index()).set_index("method")
    assert paper.loc["grad-cam", "m, 56"] == 0.2
    assert paper.loc["grad-cam", "paper (VOC 2007, 2510 images)"] == 0.254
    assert paper.loc["guided-backprop", "DD2412 (120 ILSVRC images, argsort bug)"] == 0.0095
    assert not paper.isna().any().any()


def test_correlation_comparisons_pair_images_by_hand():
    out = tables.correlation_comparisons(_correlation_table())
    assert list(out["comparison"]) == ["grad-cam vs guided-backprop, 56 x 56"]
    row = out.iloc[0]
    # images a, b (c's grad-cam map was constant): differences 0.3, 0.3
    assert row["images"] == 2 and row["a - b"] == "0.300 (0.300-0.300)"


# ------------------------------------------------------------------------------ Task 4 (SYNTHETIC data)


@pytest.fixture
def synthetic():
    return user_study.signed_ratings(study.read_responses(FIXTURES / "SYNTHETIC_responses.csv"), "vgg16")


def test_trust_summary_by_hand(synthetic):
    summary = tables.trust_summary(synthetic).set_index("method")
    gb_rows = synthetic[synthetic["method"] == "guided-backprop"]
    gb = gb_rows["signed"].to_numpy()
    assert summary.loc["guided-backprop", "mean"] == pytest.approx(round(gb.mean(), 3))
    assert summary.loc["guided-backprop", "std"] == pytest.approx(round(gb.std(ddof=1), 3))
    assert summary.loc["guided-backprop", "Wilcoxon p (vs 0)"] == pytest.approx(
        stats.wilcoxon(gb[gb != 0]).pvalue
    )
    assert summary.loc["guided-backprop", "ratings"] == len(gb)
    assert summary.loc["guided-backprop", "raters"] == gb_rows["rater"].nunique()
    assert list(summary.reset_index().columns) == tables.TRUST_SUMMARY_COLUMNS


def test_trust_summary_without_responses_is_an_empty_table():
    empty = tables.trust_summary(None)
    assert empty.empty and list(empty.columns) == tables.TRUST_SUMMARY_COLUMNS


def test_rater_consistency_by_hand():
    table = pd.DataFrame({"rater": ["a"] * 4 + ["b"] * 2, "signed": [2, 1, -1, 0, 0, 0]})
    out = tables.rater_consistency(table).set_index("rater")
    # a: mean 0.5 > 0; non-zero ratings 2, 1, -1 -> 2 of 3 agree with the mean's sign
    assert out.loc["a", "mean"] == pytest.approx(0.5) and out.loc["a", "consistency"] == pytest.approx(
        2 / 3, abs=5e-4
    )
    assert out.loc["a", "ratings"] == 4 and np.isnan(out.loc["b", "consistency"])


def test_vs_paper_table_with_no_responses():
    table = tables.trust_vs_paper(tables.trust_summary(None), study.STUDY_METHODS).set_index("method")
    assert table.loc["guided-grad-cam", "paper (VGG-16 vs AlexNet, 54 workers)"] == 1.27
    assert table.loc["guided-backprop", "DD2412"] == pytest.approx(0.4359)
    assert table["ratings"].tolist() == [0, 0] and table["this study"].isna().all()


def test_vs_paper_table_with_responses(synthetic):
    summary = tables.trust_summary(synthetic)
    table = tables.trust_vs_paper(summary, ["guided-grad-cam", "guided-backprop"])
    assert table["method"].tolist() == ["guided-grad-cam", "guided-backprop"]
    by_method = summary.set_index("method")
    assert (
        table["this study"].tolist() == by_method.loc[["guided-grad-cam", "guided-backprop"], "mean"].tolist()
    )
    assert table["paper (VGG-16 vs AlexNet, 54 workers)"].tolist() == [1.27, 1.00]


# ------------------------------------------------------------------------------ Task 5


def _xray_table():
    # one model, two methods, one threshold, two (image, finding) pairs
    rows = []
    for method, ratios, ious, hits in [
        ("grad-cam", (0.5, np.nan), (0.2, 0.0), (True, False)),
        ("gradient-shap", (0.1, 0.3), (0.4, 0.2), (True, True)),
    ]:
        for i in range(2):
            rows.append(
                {
                    "model": "m",
                    "image": f"x{i}",
                    "finding": "Mass",
                    "method": method,
                    "threshold": 0.85,
                    "ratio_inside": ratios[i],
                    "iou": ious[i],
                    "pointing_hit": hits[i],
                    "box_fraction": (0.25, 0.15)[i],
                }
            )
    return pd.DataFrame(rows)


def test_xray_summary_vs_seed_and_conclusions_by_hand():
    summary = tables.xray_summary(_xray_table()).set_index("method")
    gradcam = summary.loc["grad-cam"]
    assert gradcam["pairs"] == 2 and gradcam["ratio inside box"] == 0.5  # the NaN (nothing activated) dropped
    assert (
        gradcam["IoU"] == 0.1 and gradcam["pointing hit %"] == 50.0 and gradcam["box share of image"] == 0.2
    )
    assert summary.loc["gradient-shap", "ratio inside box"] == 0.2
    low, high = metrics.bootstrap_ci(np.array([0.1, 0.3]))
    assert summary.loc["gradient-shap", "95% CI"] == f"{low:.3f}-{high:.3f}"
    versus = tables.xray_vs_seed(summary.reset_index()).set_index("model")
    assert list(versus.index) == ["this report: m", "DD2412: densenet121-A", "DD2412: densenet121-B"]
    assert versus.loc["this report: m", "grad-cam"] == 0.5
    assert versus.loc["DD2412: densenet121-A", "gradient-shap"] == 0.2583
    assert set(versus.columns) == {"grad-cam", "gradient-shap"}  # only the methods this run has
    sentences = tables.xray_conclusions(summary.reset_index())
    assert sentences == [
        "grad-cam: 0.500 of the activated pixels (>= 85% of max) lie in the box, above the box's share of "
        "the image (0.200); the maximum is inside the box for 50.0 % of the pairs.",
        "gradient-shap: 0.200 of the activated pixels (>= 85% of max) lie in the box, not above the box's "
        "share of the image (0.200); the maximum is inside the box for 100.0 % of the pairs.",
    ]


def test_xray_conclusions_fall_back_to_every_threshold():
    summary = tables.xray_summary(_xray_table().assign(threshold=0.5))
    sentences = tables.xray_conclusions(summary, threshold=0.85)
    assert len(sentences) == 2 and all(">= 50% of max" in s for s in sentences)


def test_auc_summary_adds_the_mean_over_findings_with_an_auc():
    auc = pd.DataFrame(
        {
            "finding": ["a", "b", "c"],
            "positives": [2, 0, 3],
            "negatives": [5, 7, 4],
            "auc": [0.75, np.nan, 0.5004],
        }
    )
    out = tables.auc_summary(auc)
    assert out["auc"].tolist()[:3] == [0.75, pytest.approx(np.nan, nan_ok=True), 0.5]
    mean = out.iloc[-1]
    assert mean["finding"] == "mean (findings with an AUC)" and mean["positives"] == 5
    assert mean["auc"] == round((0.75 + 0.5004) / 2, 3) and mean["negatives"] == ""


# ------------------------------------------------------------------------------ Task 6


def _one_pixel_table():
    return pd.DataFrame(
        {
            "model": ["m"] * 4 + ["n"] * 2,
            "image": list("abcdef"),
            "success": [True, True, False, True, False, False],
            "before": [0.2, 0.6, np.nan, 0.7, np.nan, np.nan],
            "after": [0.1, 0.3, np.nan, 0.5, np.nan, np.nan],
        }
    )


def test_sensitivity_summary_and_conclusions_by_hand():
    table = _one_pixel_table()
    summary = tables.sensitivity_summary(table).set_index("model")
    m = summary.loc["m"]
    assert (m["attacked"], m["successful"], m["success rate (%)"]) == (4, 3, 75.0)
    assert m["before mean"] == 0.5 and m["before min"] == 0.2 and m["before max"] == 0.7
    assert m["before std"] == round(np.std([0.2, 0.6, 0.7], ddof=1), 4) and m["after mean"] == 0.3
    n = summary.loc["n"]
    assert n["successful"] == 0 and n["success rate (%)"] == 0.0 and np.isnan(n["before mean"])
    sentences = tables.one_pixel_conclusions(summary.reset_index(), table)
    assert sentences[0] == (
        "m: 3 of 4 attacks succeeded. At the attacked pixel the true class's normalised Grad-CAM "
        "(0 = least, 1 = most salient) was 0.500 on average before and 0.300 after (-0.200); 2 of the 3 "
        "attacked pixels lay in the upper half of the map (>= 0.5) before."
    )
    assert sentences[1] == "n: none of 2 one-pixel attacks succeeded within the budget."


def test_sensitivity_vs_seed_rows():
    summary = tables.sensitivity_summary(_one_pixel_table())
    table = tables.sensitivity_vs_seed(summary)
    ours = table[table["source"] == "this report (3 successful attacks)"]
    assert ours["model"].item() == "m" and ours["before mean"].item() == 0.5
    seed = table[table["source"] == "DD2412 reproduction"].set_index("model")
    assert seed.loc["vgg16", "before mean"] == 0.0609 and seed.loc["googlenet", "after max"] == 0.9302


def test_fgsm_summary_by_hand():
    table = pd.DataFrame(
        {
            "model": "m",
            "image": ["a", "b", "a", "b"],
            "epsilon": [0.01, 0.01, 0.05, 0.05],
            "success": [False, True, True, True],
            "rank_corr_true": [0.9, 0.7, 0.4, 0.2],
            "rank_corr_adversarial": [np.nan, 0.5, 0.1, 0.3],
            "pointing_hit_true": [True, False, False, False],
        }
    )
    out = tables.fgsm_summary(table).set_index("epsilon")
    assert out.loc[0.01, "images"] == 2 and out.loc[0.01, "success (%)"] == 50.0
    assert (
        out.loc[0.01, "rank corr, true class"] == 0.8 and out.loc[0.01, "rank corr, adversarial class"] == 0.5
    )
    assert out.loc[0.01, "pointing hit, true class (%)"] == 50.0 and out.loc[0.05, "success (%)"] == 100.0
    assert out.loc[0.05, "rank corr, adversarial class"] == 0.2


# ------------------------------------------------------------------------------ Task 7


def _fidelity_table():
    rows = []
    for method, after, after_random, contrast in [
        ("grad-cam", (True, False, False, False), (True, True, True, False), (0.5, 0.7, np.nan, 0.9)),
        ("gradient-shap", (False, False, False, False), (True, True, False, False), (0.2, 0.4, 0.6, 0.8)),
    ]:
        for i in range(4):
            rows.append(
                {
                    "model": "mnist-cnn",
                    "index": i,
                    "method": method,
                    "threshold": 0.1,
                    "correct_before": i < 3,
                    "correct_after": after[i],
                    "correct_after_random": after_random[i],
                    "occluded_fraction": 0.1 * (i + 1),
                    "contrastivity": contrast[i],
                }
            )
    return pd.DataFrame(rows)


def test_fidelity_summary_and_conclusions_by_hand():
    summary = tables.fidelity_summary(_fidelity_table()).set_index("method")
    gradcam = summary.loc["grad-cam"]
    # accuracy 3/4 before, 1/4 after: fidelity 0.5; random pixels 3/4 -> 0.0
    assert (
        gradcam["accuracy before"] == 0.75
        and gradcam["accuracy after"] == 0.25
        and gradcam["fidelity"] == 0.5
    )
    assert gradcam["fidelity, random pixels"] == 0.0 and gradcam["occluded share"] == 0.25
    assert gradcam["contrastivity"] == 0.7 and gradcam["contrastivity n/a"] == 1 and gradcam["images"] == 4
    assert (
        summary.loc["gradient-shap", "fidelity"] == 0.75
        and summary.loc["gradient-shap", "contrastivity"] == 0.5
    )
    # fidelity minus random, image by image: after_random - after = (0, 1, 1, 0) -> 0.5
    diff = statistics.paired_difference([1, 1, 1, 0], [1, 0, 0, 0])
    assert gradcam["fidelity - random"] == f"0.500 ({diff.low:.3f}-{diff.high:.3f})"
    sentences = tables.fidelity_conclusions(summary.reset_index())
    assert sentences[0] == (
        "mnist-cnn, grad-cam, t = 10%: occluding 25% of the pixels costs 0.500 accuracy (0.000 for as many "
        f"random pixels; difference {gradcam['fidelity - random']}); contrastivity 0.700"
    )


def test_fidelity_vs_seed_pivots_metrics_and_methods():
    summary = tables.fidelity_summary(_fidelity_table())
    pivot = tables.fidelity_vs_seed(summary, "mnist", model="mnist-cnn")
    assert list(pivot.index) == [("contrastivity", 0.1), ("fidelity", 0.1), ("fidelity - random", 0.1)]
    assert pivot.loc[("fidelity - random", 0.1), ("DD2412", "grad-cam")] == "n/a"  # the seed had none
    assert pivot.loc[("fidelity", 0.1), ("this report", "grad-cam")] == 0.5
    assert pivot.loc[("fidelity", 0.1), ("DD2412", "grad-cam")] == 0.470
    assert pivot.loc[("fidelity", 0.1), ("DD2412", "gradient-shap")] == 0.916  # the seed's "shap"
    assert pivot.loc[("contrastivity", 0.1), ("DD2412", "gradient-shap")] == 0.696
    both = pd.concat([summary, summary.assign(model="other", fidelity=0.0)], ignore_index=True)
    only = tables.fidelity_vs_seed(both, "mnist", model="mnist-cnn")
    pd.testing.assert_frame_equal(only, pivot)


def test_standin_accuracy_per_dataset(tmp_path):
    model = random_standin("mnist-cnn", tmp_path)
    train, test = training.mnist_splits(8000)
    test = test.sample(40, seed=0)
    trained = training.TrainedModel(standins.default_config("mnist-cnn"), tmp_path, "", [], 0.0, False)
    standin = fidelity.FidelityStandIn("mnist", trained, model, train, test)
    table = tables.standin_accuracy({"mnist": standin})
    with torch.no_grad():
        predicted = model(test.images.contiguous(memory_format=torch.channels_last)).argmax(1)
    expected = round(float((predicted == test.labels).float().mean()), 4)
    assert table.to_dict("records") == [
        {"model": "mnist-cnn", "train images": 8000, "test images": 40, "test accuracy": expected}
    ]


# ------------------------------------------------------------------------------ the verdicts


def test_verdicts_html_links_each_claim_to_its_section():
    verdicts = pd.DataFrame(
        [
            {
                "claim": "T1-x",
                "kind": "paper",
                "section": "Sec. 4.1",
                "statement": "A <beats> B",
                "paper": "56.51 vs 70.92",
                "this report": "m: 1.0 vs 2.0; n: 3.0 vs 4.0",
                "verdict": "reproduced",
                "link": "notebooks/01_localization",
            },
            {
                "claim": "X7-y",
                "kind": "extension",
                "section": "seed Task 7",
                "statement": "s",
                "paper": "p",
                "this report": "",
                "verdict": "not run (no file)",
                "link": "notebooks/07_contrastivity_fidelity",
            },
        ]
    )
    page = tables.verdicts_html(verdicts)
    assert '<a href="../notebooks/01_localization.html"><b>T1-x</b></a>' in page
    assert "A &lt;beats&gt; B" in page and "m: 1.0 vs 2.0<br>n: 3.0 vs 4.0" in page
    assert page.count("extension of the DD2412 reproduction") == 1 and "<b>not run (no file)</b>" in page
    assert '<a href="../../notebooks/01_localization.html">' in tables.verdicts_html(verdicts, "book/sub")


def test_pointing_saturation_names_gradcam_and_the_centre_point_on_all_images():
    summary = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "images": ["all", "all", "difficult"],
            "method": ["grad-cam", "centre", "grad-cam"],
            "accuracy": ["90.7 (89.0-92.2)", "91.4 (89.7-92.8)", "74.1 (68.8-78.8)"],
        }
    )
    assert (
        tables.pointing_saturation(summary)
        == "m: Grad-CAM 90.7 (89.0-92.2) %, centre point 91.4 (89.7-92.8) %"
    )


def test_fgsm_table_shows_epsilons_in_255ths_and_no_nan():
    summary = pd.DataFrame(
        {
            "model": ["m", "m"],
            "epsilon": [0.0, 0.5 / 255],
            "images": [48, 48],
            "success (%)": [0.0, 81.25],
            "rank corr, true class": [1.0, 0.9381],
            "rank corr, adversarial class": [np.nan, 0.949],
            "pointing hit, true class (%)": [93.75, 93.75],
        }
    )
    shown = tables.fgsm_table(summary)
    assert shown["epsilon (of 0-1 range)"].tolist() == ["0", "0.5/255"]
    assert shown["rank corr, adversarial class"].tolist() == ["n/a", "0.95"]
    assert shown["success (%)"].tolist() == ["0.0", "81.2"]
    assert tables.epsilon_label(8 / 255) == "8/255"


# ------------------------------------------------------------------------------ beyond the paper


def test_sanity_table_cells_and_verdicts_by_hand():
    nan = np.nan
    verdicts = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "method": ["grad-cam", "backprop", "integrated-gradients"],
            "spearman_abs_n": [5, 4, 0],
            "spearman_abs_randomised": [0.12345, -0.0004, nan],
            "spearman_abs_difference": [0.05, -0.2, nan],
            "spearman_abs_low": [0.01, -0.26, nan],
            "spearman_abs_high": [0.09, -0.14, nan],
            "ssim_difference": [-0.02, 0.0, nan],
            "ssim_low": [-0.05, -0.1, nan],
            "ssim_high": [0.01, 0.1, nan],
            "passes": [False, True, None],
        }
    )
    table = tables.sanity_table(verdicts)
    assert list(table.columns) == [
        "model",
        "method",
        "pairs",
        "Spearman |map|, randomised",
        "Spearman |map|, minus unrelated",
        "SSIM, minus unrelated",
        "sanity check",
    ]
    rows = table.set_index("method")
    assert rows["pairs"].tolist() == [5, 4, 0]  # no pair: constant maps only
    assert rows.loc["grad-cam", "Spearman |map|, randomised"] == 0.123
    # half-widths 0.04 and 0.03: three decimals; a negative bound separates with "to"
    assert rows.loc["grad-cam", "Spearman |map|, minus unrelated"] == "0.050 (0.010-0.090)"
    assert rows.loc["grad-cam", "SSIM, minus unrelated"] == "-0.020 (-0.050 to 0.010)"
    assert rows.loc["backprop", "Spearman |map|, minus unrelated"] == "-0.200 (-0.260 to -0.140)"
    assert rows.loc["backprop", "SSIM, minus unrelated"] == "0.00 (-0.10 to 0.10)"  # half-width 0.1
    assert rows["sanity check"].tolist() == ["fails", "passes", "n/a"]  # no verdict without pairs
    assert rows.loc["integrated-gradients", "Spearman |map|, minus unrelated"] == "n/a"
    assert np.isnan(rows.loc["integrated-gradients", "Spearman |map|, randomised"])
    # a verdict read back as NaN (a merged table) is no verdict either
    assert tables.sanity_table(verdicts.assign(passes=[True, np.nan, False]))["sanity check"].tolist() == [
        "passes",
        "n/a",
        "fails",
    ]


def _deletion_summary():
    nan = np.nan
    return pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "method": ["grad-cam", "hirescam", "random"],
            "n_images": [4, 4, 3],
            "deletion": ["0.10 (0.08-0.12)", "0.09 (0.07-0.11)", "0.30 (0.25-0.35)"],
            "insertion": ["0.40 (0.35-0.45)", "0.43 (0.38-0.48)", "0.20 (0.15-0.25)"],
            "deletion_diff": [0.0, -0.012, nan],
            "deletion_diff_low": [0.0, -0.02, nan],
            "deletion_diff_high": [0.0, -0.004, nan],
            "insertion_diff": [0.0, 0.03, 0.2],
            "insertion_diff_low": [0.0, 0.01, nan],
            "insertion_diff_high": [0.0, 0.05, nan],
        }
    )


def test_deletion_table_by_hand():
    table = tables.deletion_table(_deletion_summary())
    assert list(table.columns) == [
        "model",
        "method",
        "images",
        "deletion AUC",
        "deletion, minus Grad-CAM",
        "insertion AUC",
        "insertion, minus Grad-CAM",
    ]
    rows = table.set_index("method")
    assert rows["images"].tolist() == [4, 4, 3]
    assert rows.loc["hirescam", "deletion AUC"] == "0.09 (0.07-0.11)"
    assert rows.loc["hirescam", "deletion, minus Grad-CAM"] == "-0.012 (-0.020 to -0.004)"
    assert rows.loc["hirescam", "insertion, minus Grad-CAM"] == "0.030 (0.010-0.050)"
    # Grad-CAM against itself, and a method without a paired difference (or without its interval)
    assert rows.loc["grad-cam", "deletion, minus Grad-CAM"] == "n/a"
    assert rows.loc["grad-cam", "insertion, minus Grad-CAM"] == "n/a"
    assert rows.loc["random", "deletion, minus Grad-CAM"] == "n/a"
    assert rows.loc["random", "insertion, minus Grad-CAM"] == "n/a"


def test_successors_table_by_hand():
    rows = []
    # model m, images i0-i3: grad-cam right at 15 % on i0, i1; hirescam on i0; both wrong at 30 %
    for i in range(4):
        for method, right in (("grad-cam", i < 2), ("hirescam", i < 1)):
            rows.append(
                {"model": "m", "image": f"i{i}", "method": method, "threshold": 0.15, "loc_top1": right}
            )
            rows.append(
                {"model": "m", "image": f"i{i}", "method": method, "threshold": 0.30, "loc_top1": False}
            )
    # score-cam at 30 % only: no row at the paper's threshold
    rows.append({"model": "m", "image": "i0", "method": "score-cam", "threshold": 0.30, "loc_top1": True})
    localization = pd.DataFrame(rows)
    # held-out images i2, i3 at grad-cam's tuned 30 %: right on i2
    tuned = pd.DataFrame(
        {
            "model": "m",
            "image": ["i2", "i3"],
            "method": "grad-cam",
            "threshold": 0.30,
            "loc_top1": [True, False],
        }
    )
    pointing = pd.DataFrame(
        {
            "model": "m",
            "method": ["grad-cam"] * 4 + ["hirescam"],
            "is_gt": [True, True, True, False, True],
            "hit": [True, True, False, False, False],
        }
    )
    deletion = _deletion_summary()
    verdicts = pd.DataFrame({"model": "m", "method": ["grad-cam", "hirescam"], "passes": [False, None]})
    costs = pd.DataFrame(
        {"model": "m", "method": ["grad-cam", "score-cam"], "forward_passes": [2.04567, 512.4]}
    )
    table = tables.successors_table(
        localization, tuned, pointing, deletion, verdicts, costs, ["grad-cam", "hirescam", "score-cam"]
    )
    assert list(table.columns) == [
        "model",
        "method",
        "loc err, 15%",
        "loc err, tuned",
        "pointing, difficult",
        "deletion AUC",
        "insertion AUC",
        "sanity check",
        "cost (forward passes)",
    ]
    out = table.set_index("method")
    assert list(out.index) == ["grad-cam", "hirescam", "score-cam"] and (out["model"] == "m").all()
    # loc errors 2/4 and 3/4 with their Wilson intervals; score-cam has no row at 15 %
    assert out.loc["grad-cam", "loc err, 15%"] == _wilson_cell(2, 4) == "50 (15-85)"
    assert out.loc["hirescam", "loc err, 15%"] == _wilson_cell(3, 4)
    assert out.loc["score-cam", "loc err, 15%"] == "n/a"
    assert out.loc["grad-cam", "loc err, tuned"] == f"{_wilson_cell(1, 2)} at 30%"
    assert out.loc["hirescam", "loc err, tuned"] == "n/a"
    # pointing: ground-truth cues only, 2 of 3 hits for grad-cam (Wilson 20.8-93.9 %), 0 of 1 for hirescam
    assert out.loc["grad-cam", "pointing, difficult"] == "67 (21-94)"
    low, high = statistics.proportion_ci(0, 1)
    assert out.loc["hirescam", "pointing, difficult"] == statistics.format_interval(
        0.0, 100 * low, 100 * high
    )
    assert out.loc["score-cam", "pointing, difficult"] == "n/a"
    assert out.loc["grad-cam", "deletion AUC"] == "0.10 (0.08-0.12)"
    assert out.loc["hirescam", "insertion AUC"] == "0.43 (0.38-0.48)"
    assert out.loc["score-cam", "deletion AUC"] == "n/a" and out.loc["score-cam", "insertion AUC"] == "n/a"
    assert out["sanity check"].tolist() == ["fails", "n/a", "n/a"]
    assert out["cost (forward passes)"].tolist() == ["2.05", "n/a", "512"]
    # another threshold's column
    other = tables.successors_table(
        localization, tuned, pointing, deletion, verdicts, costs, ["grad-cam"], threshold=0.30
    )
    assert other.iloc[0]["loc err, 30%"] == _wilson_cell(4, 4)


def test_identity_table_by_hand():
    identities = pd.DataFrame(
        {
            "model": ["n", "m", "m", "m", "m", "m"],
            "image": ["a", "a", "b", "c", "a", "b"],
            "method": ["hirescam", "hirescam", "hirescam", "hirescam", "layer-cam", "layer-cam"],
            "max_abs_difference": [0.05, 1e-7, 3e-7, 2e-7, 0.2, 0.1],
            "gap_linear": [False, True, True, True, True, True],
        }
    )
    table = tables.identity_table(identities)
    assert table.to_dict("records") == [
        {
            "model": "n",
            "method": "hirescam",
            "pooling + linear classifier": "no",
            "images": 1,
            "largest difference": "5.0e-02",
            "median difference": "5.0e-02",
        },
        {
            "model": "m",
            "method": "hirescam",
            "pooling + linear classifier": "yes",
            "images": 3,
            "largest difference": "3.0e-07",
            "median difference": "2.0e-07",
        },
        {
            "model": "m",
            "method": "layer-cam",
            "pooling + linear classifier": "yes",
            "images": 2,
            "largest difference": "2.0e-01",
            "median difference": "1.5e-01",
        },
    ]


def test_deletion_vs_paper_puts_wang_et_al_beside_each_model():
    summary = pd.DataFrame(
        {
            "model": ["m", "m", "m", "n"],
            "method": ["grad-cam", "score-cam", "random", "grad-cam"],
            "deletion": ["0.10 (0.08-0.12)", "0.07 (0.05-0.09)", "0.30 (0.25-0.35)", "0.11 (0.09-0.13)"],
            "insertion": ["0.40 (0.35-0.45)", "0.45 (0.40-0.50)", "0.20 (0.15-0.25)", "0.38 (0.33-0.43)"],
        }
    )
    table = tables.deletion_vs_paper(summary)
    assert list(table.columns) == [
        "method",
        "deletion, Wang et al. (VGG-16)",
        "insertion, Wang et al. (VGG-16)",
        "deletion, m",
        "insertion, m",
        "deletion, n",
        "insertion, n",
    ]
    out = table.set_index("method")
    assert list(out.index) == ["grad-cam", "grad-cam++", "score-cam"]  # Wang et al.'s Table 3; no random
    # data/reference/later_work.yaml
    assert out["deletion, Wang et al. (VGG-16)"].tolist() == [0.089, 0.082, 0.077]
    assert out["insertion, Wang et al. (VGG-16)"].tolist() == [0.357, 0.346, 0.386]
    assert out.loc["grad-cam", "deletion, m"] == "0.10 (0.08-0.12)"
    assert out.loc["grad-cam", "insertion, n"] == "0.38 (0.33-0.43)"
    assert out.loc["score-cam", "insertion, m"] == "0.45 (0.40-0.50)"
    assert out.loc["grad-cam++", "deletion, m"] == "n/a" and out.loc["grad-cam++", "insertion, n"] == "n/a"
    assert out.loc["score-cam", "deletion, n"] == "n/a"


def test_agreement_table_names_the_check():
    agreement = pd.DataFrame(
        [{"file": "cascade.csv", "rows recomputed": 10, "found": 9, "largest difference": 2.4e-6}]
    )
    table = tables.agreement_table(agreement)
    assert table.to_dict("records") == [
        {
            "file": "cascade.csv",
            "rows recomputed": 10,
            "found in the published run (all agree)": 9,
            "largest difference": "2e-06",
        }
    ]
    assert tables.agreement_table(None) is None


def test_design_tables_round_and_mark():
    sweep = pd.DataFrame(
        {"fraction": [0.0, 0.275], "images": [10, 10], "correct": [7, 5], "top1": [70.0, 50.0]}
    ).assign(low=[39.7, 23.7], high=[89.2, 76.3], gap=[0.0, 20.0])
    table = tables.pruning_table(sweep, 0.275)
    assert table["weights set to 0"].tolist() == ["0.0 %", "27.5 %"]
    assert table["the study's model"].tolist() == ["squeezenet1_1", "squeezenet1_1-pruned"]
    assert table["gap (points)"].tolist() == ["0.0", "20.0"]
    match = pd.DataFrame(
        [{"pair": "p", "method": "m", "model A": "a", "energy A": 0.1234, "model B": "b", "energy B": 0.2}]
    ).assign(ratio=[1.62], matched=[False])
    shown = tables.texture_table(match)
    assert shown[["energy A", "ratio", "matched"]].values.tolist() == [["0.123", "1.62", "no"]]
    power = pd.DataFrame(
        {
            "effect": ["e", "e"],
            "paper's value": [0.27, 0.27],
            "assumed sd": [0.5, 1.0],
            "raters needed": [31, 116],
        }
    )
    assert tables.power_table(power).to_dict("records") == [
        {"effect": "e", "paper's value": "0.27", "raters needed, sd 0.5": 31, "raters needed, sd 1": 116}
    ]


def test_agreement_table_shows_no_difference_as_0():
    agreement = pd.DataFrame([{"file": "a.csv", "rows recomputed": 1, "found": 1, "largest difference": 0.0}])
    assert tables.agreement_table(agreement)["largest difference"].tolist() == ["0"]
