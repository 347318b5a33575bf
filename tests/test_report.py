"""Report helpers on hand-made tables whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gradcam_core import report


def _localization_table():
    # 4 images, one model, grad-cam at two thresholds and the full-image baseline
    rows = []
    for i, (c1, c5, l1_15, l5_15, l1_30) in enumerate(
        [(1, 1, 1, 1, 0), (1, 1, 0, 1, 0), (0, 1, 0, 0, 0), (0, 0, 0, 0, 0)]
    ):
        base = {"model": "m", "image": f"i{i}", "label": i, "cls_top1": bool(c1), "cls_topk": bool(c5)}
        rows.append(
            {
                **base,
                "method": "grad-cam",
                "threshold": 0.15,
                "loc_top1": bool(l1_15),
                "loc_topk": bool(l5_15),
            }
        )
        rows.append(
            {**base, "method": "grad-cam", "threshold": 0.30, "loc_top1": bool(l1_30), "loc_topk": False}
        )
        rows.append(
            {**base, "method": "full-image", "threshold": np.nan, "loc_top1": False, "loc_topk": bool(c5)}
        )
    return pd.DataFrame(rows)


def test_localization_summary_errors_by_hand():
    summary = report.localization_summary(_localization_table(), 0.15).set_index("method")
    # cls top-1 err 2/4, cls top-5 err 1/4, loc top-1 err 3/4, loc top-5 err 2/4
    assert summary.loc["grad-cam", "cls top-1 err"].startswith("50.0 [")
    assert summary.loc["grad-cam", "cls top-5 err"].startswith("25.0 [")
    assert summary.loc["grad-cam", "loc top-1 err"].startswith("75.0 [")
    assert summary.loc["grad-cam", "loc top-5 err"].startswith("50.0 [")
    assert summary.loc["full-image", "loc top-1 err"].startswith("100.0 [")
    assert summary.loc["grad-cam", "images"] == 4


def test_threshold_sweep_by_hand():
    sweep = report.threshold_sweep(_localization_table()).set_index("threshold")
    assert sweep.loc[0.15, "loc top-1 err"] == 75.0 and sweep.loc[0.30, "loc top-1 err"] == 100.0


def test_pointing_summary_and_recall_curve_by_hand():
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
                "method": "grad-cam",
                "cue": cue,
                "is_gt": cue == label,
                "rank": rank,
                "raw_max": raw,
                "hit": hit,
            }
        )
    table = pd.DataFrame(rows)
    summary = report.pointing_summary(table).set_index("method")
    assert summary.loc["grad-cam", "accuracy"].startswith("50.0 [")
    curve = report.pointing_recall_curve(table, [0.0, 1.5, 5.0]).set_index("threshold")
    # t=0: all kept: right = a/1 (kept, hit) only -> 1/4; recall 2/2
    # t=1.5: kept a/1 (hit) and b/4 (absent, kept: wrong); rejected a/2 (absent: right), b/3 (gt: wrong) -> 2/4; recall 1/2
    # t=5: all rejected: right = the two absent classes -> 2/4; recall 0
    assert curve["accuracy"].tolist() == [25.0, 50.0, 50.0]
    assert curve["recall"].tolist() == [100.0, 50.0, 0.0]


def test_reference_tables_and_atomic_write(tmp_path):
    assert report.load_reference("paper")["localization_ilsvrc15_val"]["rows"][0]["loc_top1"] == 56.51
    with pytest.raises(ValueError, match="reference must be"):
        report.load_reference("blog")
    path = report.write_table(pd.DataFrame({"a": [1.0 / 3]}), tmp_path / "x" / "t.csv")
    assert path.read_text() == "a\n0.333333\n" and [p.name for p in path.parent.iterdir()] == ["t.csv"]
