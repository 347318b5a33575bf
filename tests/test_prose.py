"""The computed prose of the book (:mod:`gradcam_core.prose`): verdict counts, the findings
list of a page, tables without row index or "NaN", stacked figures."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gradcam_core import prose


def _claim(claim_id: str, link: str, reason: str) -> dict:
    return {
        "id": claim_id,
        "kind": "paper",
        "section": "Sec. 5.2",
        "claim": "People trust the better model.",
        "paper": {"numbers": "1.27", "model": "VGG-16", "dataset": "ILSVRC", "protocol": "p"},
        "measured": "nothing yet",
        "link": link,
        "rule": {"type": "not_run", "reason": reason},
    }


def test_verdict_counts_in_the_registrys_order():
    verdicts = pd.DataFrame(
        {
            "kind": ["paper", "paper", "paper", "extension"],
            "verdict": ["not run (no raters)", "reproduced", "reproduced", "inconclusive"],
        }
    )
    assert prose.verdict_counts(verdicts, "paper") == "2 reproduced, 1 not run"
    assert prose.verdict_counts(verdicts, "extension") == "1 inconclusive"
    with pytest.raises(ValueError, match="kind 'other'"):
        prose.verdict_counts(verdicts, "other")


def test_findings_list_only_the_pages_claims(tmp_path):
    registry = [_claim("T4-a", "notebooks/04_user_study", "no raters"), _claim("T1-b", "notebooks/01", "x")]
    text = prose.findings("notebooks/04_user_study", tmp_path, registry)
    assert text == ("- **T4-a** (Sec. 5.2): People trust the better model. **Verdict: not run (no raters).**")
    with pytest.raises(ValueError, match="notebooks/none"):
        prose.findings("notebooks/none", tmp_path, registry)


def test_plain_html_has_no_row_index_and_no_nan():
    table = pd.DataFrame({"method": ["a", "b"], "error": [1.5, np.nan]}).set_index("method")
    html = prose.plain_html(table)
    assert "NaN" not in html and prose.MISSING in html
    assert "<th>method</th>" in html and "<th></th>" not in html  # the index became a column
    assert html.count("<tr") == 3  # the header and two rows, no index-name row


def test_stacked_figures_keep_every_figure(monkeypatch):
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.setdefault(name, value))
    first, second = plt.figure(figsize=(2, 1), dpi=100), plt.figure(figsize=(3, 2), dpi=100)
    prose.glue_figure("both", [first, None, second])
    image = Image.open(io.BytesIO(glued["both"].data))
    # the widest figure's width, the heights added up (savefig's tight box pads 0.1 in a side)
    assert (image.width, image.height) == (300 + 20, 100 + 20 + 200 + 20)
    assert not plt.fignum_exists(first.number) and not plt.fignum_exists(second.number)
    prose.glue_figure("none", [None], empty_message="nothing here")
    assert Image.open(io.BytesIO(glued["none"].data)).height > 0


def test_claims_by_verdict_groups_ids_in_the_registrys_verdict_order():
    verdicts = pd.DataFrame(
        {
            "claim": ["A", "B", "C", "D"],
            "kind": ["paper", "paper", "paper", "extension"],
            "verdict": ["not run (no raters)", "reproduced", "reproduced", "inconclusive"],
        }
    )
    assert prose.claims_by_verdict(verdicts, "paper") == "**reproduced**: B, C; **not run**: A"


def test_published_run_text_says_what_the_page_rests_on(tmp_path):
    from gradcam_core import results

    counts = {"sanity_images": 20, "deletion_images": 12}
    assert prose.published_run_text(None, None, counts) == (
        "The tables, figures and verdicts of this page rest on its own run: 20 images per model in the "
        "cascade, 12 in deletion and insertion."
    )
    folder = tmp_path / "runs" / "08_x"
    results.write_table(pd.DataFrame({"image": ["a"], "v": [1.0]}), folder / "t.csv")
    parameters = {"sanity_images": 100, "deletion_images": 200}
    results.write_published_run(folder, parameters, {"a": 1500.0, "b": 600.0})
    published = results.read_published_run(folder, ["t"])
    agreement = results.check_published_run(published, {"t": (published.tables["t"], ["image"])}, {})
    text = prose.published_run_text(published, agreement, counts)
    assert "100 images per model in the cascade, 200 in deletion and insertion." in text
    assert (
        "in 35 minutes of computing in all, on " in text
        and " CPU cores, no GPU); its per-image" in text
        and "`runs/08_x` under `data/`" in text
    )
    assert "(20 images per model in the cascade, 12 in deletion and insertion)" in text
    assert "1 rows agree (the largest difference 0e+00, within the check's 1e-03)" in text


def test_published_run_text_names_each_make_of_a_run_remade_part_by_part():
    """A run re-made part by part says which parts were made when, at which commit and on what."""
    cpu = {"cpu": "x", "cpu_count": 2, "gpu": "none", "torch": "2", "python": "3"}
    gpu = cpu | {"gpu": "NVIDIA H100"}
    first, second = (
        {"commit": "aaa", "date": "2026-11-27", "machine": cpu},
        {"commit": "bbb", "date": "2026-11-28", "machine": gpu},
    )
    description = second | {"parts": {"cascade": first, "deletion": first, "score": second}}
    assert prose._made_text(description) == (
        "part by part: `cascade`, `deletion` on 2026-11-27 at commit `aaa` (2 CPU cores, no GPU); "
        "`score` on 2026-11-28 at commit `bbb` (NVIDIA H100)"
    )
    once = second | {"parts": {"cascade": second, "score": second}}
    assert prose._made_text(once) == "on 2026-11-28, at commit `bbb` (NVIDIA H100)"


def test_sweep_sample_text_says_where_the_sweep_ran_and_whether_the_sample_stands_for_all():
    check = pd.DataFrame(
        {
            "model": ["m", "m"],
            "method": ["grad-cam", "cam"],
            "sample images": [500, 500],
            "all images": [50000, 50000],
            "within": [True, True],
        }
    )
    text = prose.sweep_sample_text(check, 0.15)
    assert text.startswith("The sweep and the threshold tuning ran on the first 500 images of each model")
    assert "the 15% rows and the headline use all 50,000; every method's" in text
    assert "so the sample stands for them" in text
    text = prose.sweep_sample_text(check.assign(within=[True, False]), 0.15)
    assert (
        "for 1 of the 2 rows the error at 15% on all images lies outside the 95 % interval of the "
        "sample's (m cam)" in text
    )
    everything = check.assign(**{"sample images": 1300, "all images": 1300})
    assert prose.sweep_sample_text(everything, 0.15) == (
        "The sweep and the threshold tuning ran on every image of this run (1,300 per model)."
    )


def _reference_summary(centre_deletion_diff: tuple[float, float, float]) -> pd.DataFrame:
    """A deletion summary by hand: Grad-CAM and the two reference orders on one model, the
    references' paired differences from Grad-CAM (reference minus Grad-CAM)."""
    rows = []
    for method, deletion, insertion in (
        ("grad-cam", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ("random", (0.04, 0.02, 0.06), (-0.27, -0.30, -0.25)),
        ("centre", centre_deletion_diff, (-0.05, -0.07, -0.04)),
    ):
        row = {"model": "m", "method": method, "deletion": f"{method} d", "insertion": f"{method} i"}
        for curve, diff in (("deletion", deletion), ("insertion", insertion)):
            row |= dict(zip((f"{curve}_diff", f"{curve}_diff_low", f"{curve}_diff_high"), diff))
        rows.append(row)
    return pd.DataFrame(rows)


def test_reference_orders_text_says_where_deletion_cannot_tell_gradcam_from_a_trivial_order():
    told = prose.reference_orders_text(_reference_summary((0.05, 0.04, 0.06)))
    assert told.startswith("On m, Grad-CAM's deletion and insertion AUCs both beat")
    # centre-first deletes faster than Grad-CAM, the interval includes 0: not told apart
    not_told = prose.reference_orders_text(_reference_summary((-0.008, -0.019, 0.004)))
    assert "on m, centre-first's deletion AUC is centre d against Grad-CAM's grad-cam d" in not_told
    assert "(difference -0.008, 95 % interval -0.019 to +0.004)" in not_told
    assert "The other 3 of 4 comparisons with a reference order favour Grad-CAM." in not_told
    # a reference significantly better at insertion also fails (the sign flips for insertion)
    better = _reference_summary((0.05, 0.04, 0.06))
    better.loc[2, ["insertion_diff", "insertion_diff_low", "insertion_diff_high"]] = (0.03, 0.01, 0.05)
    assert "centre-first's insertion AUC" in prose.reference_orders_text(better)
    assert prose.reference_orders_text(better.iloc[:1]).startswith("No reference order ran beside Grad-CAM")


def test_verdicts_across_models_text_groups_methods_by_their_verdicts():
    verdicts = pd.DataFrame(
        {
            "model": ["a"] * 4 + ["b"] * 4,
            "method": ["grad-cam", "backprop", "guided-backprop", "score-cam"] * 2,
            "passes": [True, False, False, None, True, False, True, True],
        }
    )
    text = prose.verdicts_across_models_text(verdicts)
    assert text == (
        "The verdicts agree on the 2 models for grad-cam (pass on both); backprop (fail on both). "
        "They depend on the model for guided-backprop (fail on a, pass on b): a verdict at the last "
        "step holds for the model it was measured on, not for the method in general."
    )
    same = verdicts[verdicts["method"] != "guided-backprop"]
    assert prose.verdicts_across_models_text(same).endswith("No verdict depends on the model.")
    assert prose.verdicts_across_models_text(verdicts[verdicts["model"] == "a"]).startswith("One model only")
