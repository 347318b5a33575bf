"""The claims registry and its verdicts (:mod:`gradcam_core.claims`): every verdict from
hand-made results files, both directions of an ordering, chains, filters on text, number and
boolean columns, paired columns of the same rows, the display string, the results-page table,
and the shipped ``data/reference/claims.yaml``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gradcam_core import claims, statistics
from gradcam_core.claims import NOT_REPRODUCED, NOT_RUN, NOT_TESTABLE, PARTLY, REPRODUCED, VERDICTS

ROOT = Path(__file__).resolve().parent.parent
LOCALIZATION = "01_localization/per_image.csv"
GRADCAM = {"method": "grad-cam", "boxing": "threshold", "threshold": 0.15}
CMWP = {"method": "c-mwp", "boxing": "grab-cut"}

# Right/wrong patterns over 20 images, paired image by image (1 = localised right):
RIGHT_16 = [1] * 16 + [0] * 4  # 20 % error
RIGHT_4 = [1] * 4 + [0] * 16  # 80 % error: 12 images right only with RIGHT_16, none the other way
# equal errors, 6 images right only on one side and 6 only on the other: the interval holds 0
MIXED_A = [1] * 6 + [0] * 6 + [1] * 4 + [0] * 4
MIXED_B = [0] * 6 + [1] * 6 + [1] * 4 + [0] * 4


def write(results_dir: Path, relative: str, table: pd.DataFrame) -> Path:
    path = results_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def localization_rows(pairs: dict[str, tuple[list, list]]) -> pd.DataFrame:
    """Task 1-shaped rows: per model, Grad-CAM at 15 % (side a's right/wrong pattern), c-MWP
    boxed by grab-cut (no threshold; side b's pattern) and a Grad-CAM row at another threshold
    that the filters must leave out."""
    rows = []
    for model, (a, b) in pairs.items():
        for i, (right_a, right_b) in enumerate(zip(a, b)):
            image = f"img{i:02d}.JPEG"
            rows += [
                {"model": model, "image": image, "method": "grad-cam", "boxing": "threshold",
                 "threshold": 0.15, "loc_top1": bool(right_a)},
                {"model": model, "image": image, "method": "grad-cam", "boxing": "threshold",
                 "threshold": 0.5, "loc_top1": not right_a},
                {"model": model, "image": image, "method": "c-mwp", "boxing": "grab-cut",
                 "threshold": np.nan, "loc_top1": bool(right_b)},
            ]  # fmt: skip
    return pd.DataFrame(rows)


def claim(rule: dict, claim_id: str = "test-claim") -> dict:
    """A registry entry around ``rule``, validated as the registry's are."""
    entry = {
        "id": claim_id,
        "kind": "paper",
        "section": "Sec. 4.1",
        "claim": "A beats B.",
        "paper": {"numbers": "1 vs 2", "model": "VGG-16", "dataset": "ILSVRC", "protocol": "p"},
        "measured": "A against B on stand-ins.",
        "link": "notebooks/01_localization",
        "rule": rule,
    }
    claims.validate_claim(entry)
    return entry


def localization_ordering(**overrides) -> dict:
    rule = {
        "type": "ordering",
        "results": LOCALIZATION,
        "metric": "loc_top1",
        "as_error": True,
        "better": "lower",
        "scale": 100,
        "a": GRADCAM,
        "b": CMWP,
    }
    return claim({**rule, **overrides})


def expected_line(model: str, a, b, scale=100, digits=1) -> str:
    """The display line of one model, computed from the module's statistics directly."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = statistics.paired_difference(a, b, seed=0)
    f = f"{{:.{digits}f}}"
    return (
        f"{model}: {f.format(scale * a.mean())} vs {f.format(scale * b.mean())}, "
        f"diff {f.format(scale * d.mean)} ({f.format(scale * d.low)} to {f.format(scale * d.high)}), n={d.n}"
    )


# --------------------------------------------------------------------------------------------
# Orderings: every verdict
# --------------------------------------------------------------------------------------------


def test_reproduced_when_every_model_excludes_zero_in_the_papers_direction(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4), "m2": (RIGHT_16, RIGHT_4)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == REPRODUCED and verdict.reason == "" and verdict.label == REPRODUCED
    errors_a, errors_b = 1 - np.array(RIGHT_16), 1 - np.array(RIGHT_4)
    assert verdict.this_report == "; ".join(expected_line(m, errors_a, errors_b) for m in ("m1", "m2"))
    assert verdict.this_report.startswith("m1: 20.0 vs 80.0, diff -60.0 (")
    details = verdict.per_model["m1"]
    assert (
        details["outcome"] == "for"
        and details["a"] == pytest.approx(0.2)
        and details["b"] == pytest.approx(0.8)
    )
    assert details["difference"].n == 20 and details["difference"].high < 0


def test_not_reproduced_when_every_model_excludes_zero_the_other_way(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_4, RIGHT_16), "m2": (RIGHT_4, RIGHT_16)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == NOT_REPRODUCED and verdict.reason == ""
    assert {d["outcome"] for d in verdict.per_model.values()} == {"against"}


def test_partly_reproduced_when_some_models_agree_and_the_rest_are_unclear(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4), "m2": (MIXED_A, MIXED_B)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == PARTLY
    assert verdict.reason == "m1: in the paper's direction; m2: interval contains 0"
    assert verdict.label == f"{PARTLY} (m1: in the paper's direction; m2: interval contains 0)"
    assert "m2: 50.0 vs 50.0, diff 0.0 (" in verdict.this_report


def test_partly_reproduced_and_model_dependent_when_models_disagree(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4), "m2": (RIGHT_4, RIGHT_16)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == PARTLY
    assert verdict.reason == "model-dependent: m1: in the paper's direction; m2: reversed"


def test_not_reproduced_when_reversed_for_some_and_unclear_for_the_rest(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_4, RIGHT_16), "m2": (MIXED_A, MIXED_B)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == NOT_REPRODUCED
    assert verdict.reason == "m1: reversed; m2: interval contains 0"


def test_inconclusive_when_every_interval_contains_zero(tmp_path):
    same = [1, 0] * 10
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (MIXED_A, MIXED_B), "m2": (same, same)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == claims.INCONCLUSIVE and verdict.reason == ""
    # identical decisions: a zero difference with a zero-width interval, still not excluding 0
    assert "m2: 50.0 vs 50.0, diff 0.0 (0.0-0.0), n=20" in verdict.this_report


def test_direction_higher_and_lower_on_a_continuous_metric(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.0, 0.5, 30)
    rows = [
        {"model": "m1", "image": f"i{i}", "method": method, "spearman": value}
        for i in range(30)
        for method, value in (("grad-cam", base[i] + 0.2 + 0.01 * rng.standard_normal()), ("c-mwp", base[i]))
    ]
    write(tmp_path, "03/per_image.csv", pd.DataFrame(rows))
    rule = {
        "type": "ordering",
        "results": "03/per_image.csv",
        "metric": "spearman",
        "better": "higher",
        "a": {"method": "grad-cam"},
        "b": {"method": "c-mwp"},
    }
    higher = claims.evaluate(claim(rule), tmp_path)
    assert higher.verdict == REPRODUCED
    assert re.fullmatch(
        r"m1: \d\.\d{3} vs \d\.\d{3}, diff 0\.2\d\d \(0\.\d{3}-0\.\d{3}\), n=30", higher.this_report
    )
    assert claims.evaluate(claim({**rule, "better": "lower"}), tmp_path).verdict == NOT_REPRODUCED
    swapped = {**rule, "a": rule["b"], "b": rule["a"], "better": "lower"}
    assert claims.evaluate(claim(swapped), tmp_path).verdict == REPRODUCED


def test_pairs_only_images_both_sides_have_and_names_models_without_pairs(tmp_path):
    table = localization_rows({"m1": (RIGHT_16, RIGHT_4), "m2": (RIGHT_16, RIGHT_4)})
    # c-MWP on the first 10 images only (as the costly image-space methods run); none for m2
    table = table[(table["method"] != "c-mwp") | ((table["model"] == "m1") & (table["image"] < "img10"))]
    write(tmp_path, LOCALIZATION, table)
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert list(verdict.per_model) == ["m1"] and verdict.per_model["m1"]["difference"].n == 10
    assert verdict.verdict == REPRODUCED and verdict.reason == "no pairs for m2"


# --------------------------------------------------------------------------------------------
# Not run, not testable
# --------------------------------------------------------------------------------------------


def test_not_run_when_the_results_file_is_missing(tmp_path):
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == NOT_RUN
    assert verdict.label == (
        "not run (results file 01_localization/per_image.csv missing: run notebook 01_localization)"
    )


def test_not_run_when_a_side_selects_no_rows(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4)}))
    verdict = claims.evaluate(localization_ordering(b={"method": "backprop", "boxing": "grab-cut"}), tmp_path)
    assert verdict.verdict == NOT_RUN
    assert verdict.reason == f"no rows for {{method: backprop, boxing: grab-cut}} in {LOCALIZATION}"
    where = claims.evaluate(localization_ordering(where={"model": "m9"}), tmp_path)
    assert (
        where.reason == "no rows for {model: m9, method: grad-cam, boxing: threshold, threshold: 0.15} "
        f"in {LOCALIZATION}"
    )


def test_not_run_when_a_column_is_missing_or_the_file_is_empty(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4)}).drop(columns="boxing"))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == NOT_RUN
    assert verdict.reason == f"column boxing missing from {LOCALIZATION}: re-run notebook 01_localization"
    (tmp_path / LOCALIZATION).write_text("")
    assert "is empty" in claims.evaluate(localization_ordering(), tmp_path).reason


def test_not_run_when_the_filters_leave_several_rows_per_pair(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4)}))
    verdict = claims.evaluate(localization_ordering(a={"method": "grad-cam"}), tmp_path)
    assert verdict.verdict == NOT_RUN and "repeat a (model, image)" in verdict.reason


def test_not_run_when_the_sides_share_no_image(tmp_path):
    table = localization_rows({"m1": (RIGHT_16, RIGHT_4)})
    table.loc[table["method"] == "c-mwp", "image"] += ".other"
    write(tmp_path, LOCALIZATION, table)
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert (
        verdict.verdict == NOT_RUN and verdict.reason == f"the two sides share no (image) in {LOCALIZATION}"
    )


def test_fixed_verdicts_of_not_run_and_not_testable_rules(tmp_path):
    not_run = claims.evaluate(claim({"type": "not_run", "reason": "no real raters"}), tmp_path)
    assert (not_run.verdict, not_run.label, not_run.this_report) == (NOT_RUN, "not run (no real raters)", "")
    testable = claims.evaluate(
        claim({"type": "not_testable", "reason": "needs VGG-16 on 50,000 images"}), tmp_path
    )
    assert testable.verdict == NOT_TESTABLE
    assert testable.label == "not testable here (needs VGG-16 on 50,000 images)"


# --------------------------------------------------------------------------------------------
# Chains
# --------------------------------------------------------------------------------------------


def occlusion_rows(means: dict[str, float], spread: float = 0.01, n: int = 25) -> pd.DataFrame:
    """Task 3-shaped rows: per image and method a Spearman value (method mean + a small
    per-image deviation shared by the methods), at the resolutions "56" and "full"."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        shared = rng.uniform(-0.2, 0.2)
        for method, mean in means.items():
            value = mean + shared + spread * rng.standard_normal()
            rows.append(
                {"model": "m1", "image": f"i{i}", "method": method, "resolution": "56", "spearman": value}
            )
            rows.append(
                {"model": "m1", "image": f"i{i}", "method": method, "resolution": "full", "spearman": -value}
            )
    return pd.DataFrame(rows)


CHAIN = {
    "type": "chain",
    "results": "03/per_image.csv",
    "metric": "spearman",
    "better": "higher",
    "where": {"resolution": "56"},
    "steps": [
        {"a": {"method": "guided-grad-cam"}, "b": {"method": "grad-cam"}},
        {"a": {"method": "grad-cam"}, "b": {"method": "guided-backprop"}},
    ],
}


@pytest.mark.parametrize(
    "means, expected",
    [
        ({"guided-grad-cam": 0.30, "grad-cam": 0.25, "guided-backprop": 0.10}, REPRODUCED),
        ({"guided-grad-cam": 0.10, "grad-cam": 0.25, "guided-backprop": 0.30}, NOT_REPRODUCED),
        ({"guided-grad-cam": 0.25, "grad-cam": 0.25, "guided-backprop": 0.25}, claims.INCONCLUSIVE),
        ({"guided-grad-cam": 0.30, "grad-cam": 0.25, "guided-backprop": 0.40}, PARTLY),
        ({"guided-grad-cam": 0.25, "grad-cam": 0.25, "guided-backprop": 0.10}, PARTLY),
    ],
)
def test_chain_combines_its_steps(tmp_path, means, expected):
    write(tmp_path, "03/per_image.csv", occlusion_rows(means))
    verdict = claims.evaluate(claim(CHAIN), tmp_path)
    assert verdict.verdict == expected
    assert list(verdict.steps) == ["guided-grad-cam vs grad-cam", "grad-cam vs guided-backprop"]
    assert verdict.this_report.startswith("guided-grad-cam vs grad-cam: m1: ")
    assert " | grad-cam vs guided-backprop: m1: " in verdict.this_report
    if expected == PARTLY:
        assert all(label in verdict.reason for label in verdict.steps)


def test_chain_steps_share_the_chains_fields_unless_they_override_them(tmp_path):
    # at resolution "full" every value is negated, so the chain's own order flips there
    write(
        tmp_path,
        "03/per_image.csv",
        occlusion_rows({"guided-grad-cam": 0.3, "grad-cam": 0.25, "guided-backprop": 0.1}),
    )
    steps = [
        CHAIN["steps"][0],
        {**CHAIN["steps"][1], "where": {"resolution": "full"}, "label": "at full size"},
    ]
    verdict = claims.evaluate(claim({**CHAIN, "steps": steps}), tmp_path)
    assert verdict.verdict == PARTLY
    assert verdict.steps["guided-grad-cam vs grad-cam"].verdict == REPRODUCED
    assert verdict.steps["at full size"].verdict == NOT_REPRODUCED
    assert verdict.reason == "guided-grad-cam vs grad-cam: reproduced; at full size: not reproduced"


def test_chain_is_not_run_when_a_step_is_not_run(tmp_path):
    missing = claims.evaluate(claim(CHAIN), tmp_path)
    assert (
        missing.verdict == NOT_RUN
        and missing.reason == "results file 03/per_image.csv missing: run notebook 03"
    )
    write(tmp_path, "03/per_image.csv", occlusion_rows({"guided-grad-cam": 0.3, "grad-cam": 0.25}))
    partial = claims.evaluate(claim(CHAIN), tmp_path)
    assert partial.verdict == NOT_RUN
    assert (
        partial.reason == "grad-cam vs guided-backprop: "
        "no rows for {resolution: 56, method: guided-backprop} in 03/per_image.csv"
    )
    assert partial.steps["guided-grad-cam vs grad-cam"].verdict == REPRODUCED


# --------------------------------------------------------------------------------------------
# Filters, paired columns
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, form",
    [
        (56, "56"), (56.0, "56"), ("56", "56"), (" 56 ", "56"), (0.15, "0.15"), ("0.150", "0.15"),
        (8 / 255, "0.0313725"), (True, "True"), (np.bool_(False), "False"), ("true", "True"),
        ("FALSE", "False"), (None, "nan"), (np.nan, "nan"), ("", "nan"), ("full", "full"),
        ("grad-cam", "grad-cam"), (np.int64(3), "3"),
    ],
)  # fmt: skip
def test_canonical_forms(value, form):
    assert claims.canonical(value) == form


def test_filters_match_text_numbers_and_booleans_however_pandas_read_them(tmp_path):
    table = pd.DataFrame(
        {
            "resolution": ["56", "full", "56", "56"],
            "threshold": [0.15, 0.15, np.nan, 0.5],
            "is_gt": [True, True, False, True],
            "difficult": [True, None, False, True],  # booleans with a gap read back as text
        }
    )
    read = pd.read_csv(write(tmp_path, "t.csv", table))
    assert read["difficult"].dtype != bool and read["is_gt"].dtype == bool
    assert list(claims.select(read, {"resolution": "56"}).index) == [0, 2, 3]
    assert list(claims.select(read, {"resolution": 56}).index) == [0, 2, 3]
    assert list(claims.select(read, {"threshold": 0.15}).index) == [0, 1]
    assert list(claims.select(read, {"threshold": None}).index) == [2]
    assert list(claims.select(read, {"is_gt": True, "difficult": True}).index) == [0, 3]
    assert list(claims.select(read, {"is_gt": "True", "difficult": "true"}).index) == [0, 3]
    assert list(claims.select(read, {"difficult": False}).index) == [2]
    # a column of numbers only (every resolution 56) reads as int: "56" still matches
    only_56 = pd.read_csv(write(tmp_path, "u.csv", table.assign(resolution=56)))
    assert only_56["resolution"].dtype == np.int64 and len(claims.select(only_56, {"resolution": "56"})) == 4


def test_boolean_columns_count_as_zero_one_even_with_gaps(tmp_path):
    values, binary = claims.as_numbers(pd.Series(["True", "False", np.nan]))
    assert binary and np.array_equal(values, [1.0, 0.0, np.nan], equal_nan=True)
    values, binary = claims.as_numbers(pd.Series([0.25, np.nan]))
    assert not binary and values[0] == 0.25


def test_yaml_claims_filter_on_text_and_booleans(tmp_path):
    """A pointing-game ordering as the registry writes it: ``where: {is_gt: true, difficult:
    true}`` and a resolution given as the text "56"."""
    rows = []
    for i in range(20):
        for method, hit in (("grad-cam", i < 16), ("c-mwp", i < 6)):
            rows.append(
                {
                    "model": "m1",
                    "image": f"i{i}",
                    "method": method,
                    "is_gt": True,
                    "difficult": True,
                    "hit": hit,
                }
            )
            rows.append(
                {
                    "model": "m1",
                    "image": f"i{i}",
                    "method": method,
                    "is_gt": False,
                    "difficult": True,
                    "hit": not hit,
                }
            )
            rows.append(
                {
                    "model": "m1",
                    "image": f"i{i}",
                    "method": method,
                    "is_gt": True,
                    "difficult": False,
                    "hit": not hit,
                }
            )
    write(tmp_path / "results", "02_pointing_game/per_image.csv", pd.DataFrame(rows))
    registry = tmp_path / "claims.yaml"
    entry = claim({"type": "not_run", "reason": "x"})
    entry["rule"] = yaml.safe_load(
        """
        type: ordering
        results: 02_pointing_game/per_image.csv
        metric: hit
        better: higher
        scale: 100
        where: {is_gt: true, difficult: true}
        a: {method: grad-cam}
        b: {method: c-mwp}
        """
    )
    registry.write_text(yaml.safe_dump({"claims": [entry]}))
    (loaded,) = claims.load_claims(registry)
    verdict = claims.evaluate(loaded, tmp_path / "results")
    assert verdict.verdict == REPRODUCED
    assert verdict.this_report.startswith("m1: 80.0 vs 30.0, diff 50.0 (")


def fidelity_rows(after: list, after_random: list, method="grad-cam", model="mnist-cnn") -> list[dict]:
    return [
        {"model": model, "index": i, "method": method, "threshold": t, "correct_after": a,
         "correct_after_random": r}
        for t in (0.01, 0.1)
        for i, (a, r) in enumerate(zip(after, after_random))
    ]  # fmt: skip


def test_metric_b_compares_two_columns_of_the_same_rows(tmp_path):
    rows = fidelity_rows([0] * 15 + [1] * 5, [1] * 18 + [0] * 2)  # salient occlusion hurts more
    rows += fidelity_rows([1] * 20, [1] * 20, method="integrated-gradients")  # no effect at all
    write(tmp_path, "07/fidelity.csv", pd.DataFrame(rows))
    rule = {
        "type": "ordering",
        "results": "07/fidelity.csv",
        "metric": "correct_after",
        "metric_b": "correct_after_random",
        "better": "lower",
        "scale": 100,
        "pair_on": ["index"],
        "where": {"threshold": 0.1},
        "a": {"method": "grad-cam"},
        "b": {"method": "grad-cam"},
    }
    verdict = claims.evaluate(claim(rule), tmp_path)
    assert verdict.verdict == REPRODUCED
    assert verdict.this_report == expected_line("mnist-cnn", [0] * 15 + [1] * 5, [1] * 18 + [0] * 2)
    assert claims.step_label(rule) == "correct_after vs correct_after_random"
    ig = {**rule, "a": {"method": "integrated-gradients"}, "b": {"method": "integrated-gradients"}}
    assert claims.evaluate(claim(ig), tmp_path).verdict == claims.INCONCLUSIVE
    # without the threshold filter, each index appears twice per side: an ambiguous pairing
    unfiltered = claims.evaluate(claim({k: v for k, v in rule.items() if k != "where"}), tmp_path)
    assert unfiltered.verdict == NOT_RUN and "repeat a (model, index)" in unfiltered.reason
    # ... unless the threshold is part of the pairing key
    keyed = claims.evaluate(
        claim({**{k: v for k, v in rule.items() if k != "where"}, "pair_on": ["index", "threshold"]}),
        tmp_path,
    )
    assert keyed.verdict == REPRODUCED and keyed.per_model["mnist-cnn"]["difference"].n == 40


# --------------------------------------------------------------------------------------------
# Absolute values
# --------------------------------------------------------------------------------------------


def test_absolute_values_are_shown_with_intervals_and_never_judged(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4)}))
    rule = {
        "type": "absolute",
        "results": LOCALIZATION,
        "metric": "loc_top1",
        "as_error": True,
        "scale": 100,
        "where": GRADCAM,
    }
    verdict = claims.evaluate(claim(rule), tmp_path)
    assert verdict.verdict == NOT_TESTABLE and verdict.reason == claims.ABSOLUTE_REASON
    low, high = statistics.proportion_ci(4, 20)  # 4 errors in 20: the Wilson interval
    assert verdict.this_report == f"m1: 20.0 ({100 * low:.1f}-{100 * high:.1f}), n=20"
    own = claims.evaluate(claim({**rule, "reason": "VGG-16 only"}), tmp_path)
    assert own.label == "not testable here (VGG-16 only)"
    assert claims.evaluate(claim({**rule, "where": {"method": "none"}}), tmp_path).verdict == NOT_RUN


def test_absolute_continuous_values_and_paired_columns(tmp_path):
    rows = [
        {"model": "m1", "image": f"i{i}", "success": i < 8, "before": 0.1 * (i % 4) if i < 8 else np.nan,
         "after": 0.1 * (i % 4) + 0.05 if i < 8 else np.nan}
        for i in range(10)
    ]  # fmt: skip
    write(tmp_path, "06/one_pixel.csv", pd.DataFrame(rows))
    rule = {"type": "absolute", "results": "06/one_pixel.csv", "metric": "after", "where": {"success": True}}
    values = np.array([0.1 * (i % 4) + 0.05 for i in range(8)])
    interval = statistics.paired_difference(values, np.zeros(8), seed=0)
    single = claims.evaluate(claim(rule), tmp_path)
    assert single.this_report == f"m1: {values.mean():.3f} ({interval.low:.3f}-{interval.high:.3f}), n=8"
    paired = claims.evaluate(claim({**rule, "metric_b": "before"}), tmp_path)
    assert paired.verdict == NOT_TESTABLE
    assert paired.this_report == "m1: after 0.200 vs before 0.150, diff 0.050 (0.050-0.050), n=8"


# --------------------------------------------------------------------------------------------
# The registry: validation and the shipped file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.pop("measured"), "'measured' is required"),
        (lambda c: c["paper"].pop("protocol"), "'paper.protocol' is required"),
        (lambda c: c.update(kind="opinion"), "'kind' must be one of paper, extension, later-work"),
        (lambda c: c.update(verdict="reproduced"), "'verdict' is not a claim field"),
        (lambda c: c["rule"].update(type="vibes"), "'rule.type' must be one of"),
        (lambda c: c["rule"].update(better="more"), "'rule.better' must be 'higher' or 'lower'"),
        (lambda c: c["rule"].pop("metric"), "'rule.metric' is required"),
        (lambda c: c["rule"].update(metrc="x"), "'rule.metrc' is not a field"),
        (lambda c: c["rule"].update(b=c["rule"]["a"]), "'rule.b' selects the same"),
        (lambda c: c["rule"].update(scale=0), "'rule.scale' must be a positive"),
        (lambda c: c["rule"].update(pair_on="image"), "'rule.pair_on' must be"),
        (lambda c: c["rule"].update(a=["grad-cam"]), "'rule.a' must be a non-empty mapping"),
        (lambda c: c["rule"].update(a={}), "'rule.a' is required"),
        (lambda c: c["rule"].update(results="../x.csv"), "'rule.results' must be a path"),
        (lambda c: c.update(rule={"type": "chain", "steps": [{"a": {}}]}), r"'rule.steps\[0\].results'"),
        (lambda c: c.update(rule={"type": "not_run"}), "'rule.reason' is required"),
    ],
)  # fmt: skip
def test_validation_names_the_claim_and_the_field(change, message):
    entry = localization_ordering()
    change(entry)
    with pytest.raises(claims.ClaimError, match="claim 'test-claim': field " + message):
        claims.validate_claim(entry)


def test_load_claims_refuses_duplicate_ids_and_a_file_without_a_list(tmp_path):
    entry = localization_ordering()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"claims": [entry, entry]}))
    with pytest.raises(claims.ClaimError, match="claim 'test-claim': field 'id' is not unique"):
        claims.load_claims(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("claims: {}\n")
    with pytest.raises(claims.ClaimError, match="list under 'claims:'"):
        claims.load_claims(tmp_path / "d.yaml")


def test_a_verdict_is_one_of_the_six():
    assert VERDICTS == (REPRODUCED, PARTLY, NOT_REPRODUCED, claims.INCONCLUSIVE, NOT_TESTABLE, NOT_RUN)
    with pytest.raises(ValueError, match="unknown verdict 'confirmed'"):
        claims.Verdict("confirmed")


def book_docnames() -> set[str]:
    """Every page of the book (``_toc.yml``: the root and each chapter's file)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = {toc["root"]}
    for part in toc.get("parts", []):
        names.update(chapter["file"] for chapter in part["chapters"])
    return names


def test_the_shipped_registry_loads_and_every_entry_is_sound():
    registry = claims.load_claims()
    assert registry == claims.load_claims(claims.CLAIMS_FILE) and 10 <= len(registry) <= 30
    ids = [c["id"] for c in registry]
    assert len(ids) == len(set(ids))
    docnames = book_docnames()
    for entry in registry:
        assert entry["rule"]["type"] in claims.RULE_FIELDS
        page = entry["link"].split("#")[0]
        assert page in docnames, f"{entry['id']}: {page} is not a page of _toc.yml"
        assert (ROOT / f"{page}.ipynb").is_file() or (ROOT / f"{page}.md").is_file(), entry["id"]
    kinds = {c["id"]: c["kind"] for c in registry}
    # the seed's additions are extensions, never claims of the paper
    for entry in registry:
        assert (entry["kind"] == "extension") == entry["section"].startswith("DD2412 reproduction, "), entry[
            "id"
        ]
        assert (entry["kind"] == "extension") == entry["link"].startswith(
            ("notebooks/05_", "notebooks/06_", "notebooks/07_")
        ), entry["id"]
    # claims of papers after Grad-CAM live on the chapter beyond the paper, and only there
    for entry in registry:
        assert (entry["kind"] == "later-work") == entry["link"].startswith("notebooks/08_"), entry["id"]
    assert {"paper", "extension", "later-work"} == set(kinds.values())
    links = {c["link"] for c in registry if c["kind"] == "extension"}
    assert {
        "notebooks/05_chest_xray",
        "notebooks/06_sensitivity",
        "notebooks/07_contrastivity_fidelity",
    } <= links
    assert any("FGSM" in c["section"] for c in registry if c["kind"] == "extension")
    types = {c["rule"]["type"] for c in registry}
    assert {"ordering", "chain", "absolute", "not_run"} <= types


def test_the_shipped_orderings_read_the_notebooks_results_files():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    for entry in claims.load_claims():
        rule = entry["rule"]
        if rule["type"] in ("ordering", "chain", "absolute"):
            assert Path(rule["results"]).parts[0] in notebooks, entry["id"]


def test_verdict_table_on_an_empty_results_folder(tmp_path):
    table = claims.verdict_table(tmp_path)
    assert list(table.columns) == list(claims.TABLE_COLUMNS)
    assert not table.isna().any().any()
    registry = claims.load_claims()
    assert list(table["claim"]) == [c["id"] for c in registry]
    for entry, verdict in zip(registry, table["verdict"]):
        assert verdict.startswith("not run ("), entry["id"]
        if entry["rule"]["type"] in ("ordering", "chain", "absolute"):
            assert "missing: run notebook" in verdict
    assert (table["this report"] == "").all()


def test_verdict_table_rows_from_hand_made_results(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4)}))
    entries = [
        localization_ordering(),
        claim({"type": "not_testable", "reason": "VGG-16 only"}, "second"),
        {**claim({"type": "not_run", "reason": "no raters"}, "third"), "kind": "extension"},
    ]
    table = claims.verdict_table(tmp_path, entries)
    assert list(table.columns) == [
        "claim",
        "kind",
        "section",
        "statement",
        "paper",
        "this report",
        "verdict",
        "link",
    ]
    assert not table.isna().any().any()
    first = table.iloc[0]
    assert first["claim"] == "test-claim" and first["verdict"] == REPRODUCED
    assert first["this report"].startswith("m1: 20.0 vs 80.0")
    assert first["paper"] == "1 vs 2 (VGG-16; ILSVRC)" and first["statement"] == "A beats B."
    assert first["link"] == "notebooks/01_localization" and first["section"] == "Sec. 4.1"
    assert list(table["verdict"][1:]) == ["not testable here (VGG-16 only)", "not run (no raters)"]
    assert list(table["kind"]) == ["paper", "paper", "extension"]


def test_shown_numbers_use_the_scale_and_never_read_minus_zero():
    assert claims._fmt(-0.6, 100) == "-60.0" and claims._fmt(0.2544, 1) == "0.254"
    assert claims._fmt(-1e-17, 100) == "0.0" and claims._fmt(-1e-17, 1) == "0.000"


# --------------------------------------------------------------------------------------------
# The forest plot's rows
# --------------------------------------------------------------------------------------------


def test_effects_table_holds_each_models_paired_difference_beside_the_papers(tmp_path):
    write(tmp_path, LOCALIZATION, localization_rows({"m1": (RIGHT_16, RIGHT_4), "m2": (MIXED_A, MIXED_B)}))
    entry = localization_ordering()
    entry["paper"]["effect"] = -14.41
    claims.validate_claim(entry)
    not_run = claim({"type": "not_run", "reason": "no raters"}, "other")
    effects = claims.effects_table(tmp_path, [entry, not_run]).set_index("model")
    assert list(effects.index) == ["m1", "m2"]  # the not-run claim has no row
    d = statistics.paired_difference(np.subtract(1, RIGHT_16), np.subtract(1, RIGHT_4), seed=0)
    assert effects.loc["m1", ["estimate", "low", "high"]].tolist() == pytest.approx(
        [100 * d.mean, 100 * d.low, 100 * d.high]
    )
    assert effects.loc["m1", "estimate"] == pytest.approx(-60.0)  # 20 % vs 80 % error
    assert effects["paper"].tolist() == [-14.41, -14.41] and set(effects["unit"]) == {"percentage points"}


def test_a_paper_effect_must_be_a_number_or_one_per_chain_step():
    entry = localization_ordering()
    entry["paper"]["effect"] = "big"
    with pytest.raises(claims.ClaimError, match="paper.effect"):
        claims.validate_claim(entry)


def test_the_registrys_shown_text_names_the_dd2412_reproduction_never_the_seed():
    for entry in claims.load_claims():
        shown = [entry["section"], entry["claim"], entry["measured"], *map(str, entry["paper"].values())]
        shown.append(str(entry["rule"].get("reason", "")))
        for text in shown:
            assert not re.search(r"\bseed\b(?!ed)|\bseed's\b", text), (entry["id"], text)


# --------------------------------------------------------------------------------------------
# within: "the same maps", judged against a numerical tolerance
# --------------------------------------------------------------------------------------------

IDENTITY = "08_beyond_the_paper/successor_identity.csv"


def within_claim(**overrides) -> dict:
    rule = {"type": "within", "results": IDENTITY, "metric": "max_abs_difference", "at_most": 1e-4}
    return claim({**rule, **overrides})


def identity_rows(largest: dict[str, float]) -> pd.DataFrame:
    """Per model three images whose differences are 0, the model's largest and half of it, and a
    row of another method pair that the filter must leave out."""
    rows = []
    for model, top in largest.items():
        for i, value in enumerate([0.0, top, top / 2]):
            rows.append({"model": model, "image": f"i{i}", "method": "hirescam", "max_abs_difference": value})
        rows.append({"model": model, "image": "i0", "method": "layer-cam", "max_abs_difference": 0.5})
    return pd.DataFrame(rows)


def test_within_every_verdict_from_the_largest_value(tmp_path):
    where = {"where": {"method": "hirescam"}}
    write(tmp_path, IDENTITY, identity_rows({"m1": 1e-7, "m2": 5e-5}))
    verdict = claims.evaluate(within_claim(**where), tmp_path)
    assert verdict.verdict == REPRODUCED and verdict.per_model["m2"]["value"] == 5e-5
    assert verdict.per_model["m1"]["n"] == 3
    assert verdict.this_report == (
        "m1: largest max_abs_difference 1e-07 (tolerance 0.0001), n=3; "
        "m2: largest max_abs_difference 5e-05 (tolerance 0.0001), n=3"
    )
    write(tmp_path, IDENTITY, identity_rows({"m1": 1e-7, "m2": 0.2}))
    verdict = claims.evaluate(within_claim(**where), tmp_path)
    assert verdict.verdict == PARTLY and "m2: above the tolerance" in verdict.reason
    assert "m1: within the tolerance" in verdict.reason
    write(tmp_path, IDENTITY, identity_rows({"m1": 0.3, "m2": 0.2}))
    assert claims.evaluate(within_claim(**where), tmp_path).verdict == NOT_REPRODUCED
    # without the filter the other method pair's 0.5 counts: above the tolerance everywhere
    write(tmp_path, IDENTITY, identity_rows({"m1": 1e-7, "m2": 1e-7}))
    assert claims.evaluate(within_claim(), tmp_path).verdict == NOT_REPRODUCED
    assert claims.evaluate(within_claim(where={"method": "score-cam"}), tmp_path).verdict == NOT_RUN


@pytest.mark.parametrize("at_most", [-1, "small", True])
def test_within_refuses_a_tolerance_that_is_not_a_number(at_most):
    with pytest.raises(claims.ClaimError, match="'rule.at_most' must be a number >= 0"):
        within_claim(at_most=at_most)


def test_an_ordering_on_fewer_pairs_than_the_minimum_is_never_judged(tmp_path):
    # four images, every one in the paper's direction: a bootstrap over them excludes 0, but four
    # pairs are too few to judge
    few = claims.MIN_PAIRS - 1
    write(tmp_path, LOCALIZATION, localization_rows({"m1": ([1] * few, [0] * few)}))
    verdict = claims.evaluate(localization_ordering(), tmp_path)
    assert verdict.verdict == claims.INCONCLUSIVE and verdict.per_model["m1"]["outcome"] == "neither"
    assert verdict.this_report.endswith(f"n={few} (too few pairs to judge)")
    enough = claims.MIN_PAIRS
    write(tmp_path, LOCALIZATION, localization_rows({"m1": ([1] * enough, [0] * enough)}))
    assert claims.evaluate(localization_ordering(), tmp_path).verdict == REPRODUCED
