"""Tables for the page: every summary of a task's per-image results (with its interval), every
table of this report beside the paper's and the seed's numbers, and the short conclusions
printed under them. Inputs are the per-image tables the tasks write (:mod:`gradcam_core.tasks`);
nothing here computes an explanation.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from . import claims, metrics, statistics
from .results import load_reference


def error_with_ci(correct) -> tuple[float, float, float]:
    """Error rate in % of a boolean array of right decisions, with its 95 % Wilson interval
    (:func:`gradcam_core.statistics.proportion_with_ci`)."""
    return statistics.proportion_with_ci(~np.asarray(correct, bool))


def _interval(values, seed: int) -> str:
    """The 95 % bootstrap interval of the mean of ``values`` as ``low-high``, 3 decimals
    (:func:`gradcam_core.statistics.format_bounds`)."""
    low, high = metrics.bootstrap_ci(values, seed=seed)
    return statistics.format_bounds(low, high, 3)


def _error_cell(correct: pd.Series) -> str:
    """Error in % with its Wilson interval, over the rows where the decision was made ("n/a"
    where none was, e.g. top-5 localisation of a method run on the top-1 class only)."""
    made = correct.dropna()
    return _with_interval(*error_with_ci(made.astype(bool))) if len(made) else "n/a"


def _with_interval(value: float, low: float, high: float, digits: int | None = None) -> str:
    """``value (low-high)`` rounded to ``digits`` decimals, by default to what the interval
    supports (:func:`gradcam_core.statistics.format_interval`)."""
    return statistics.format_interval(value, low, high, digits)


# --------------------------------------------------------------------------------------------
# The claims and their verdicts
# --------------------------------------------------------------------------------------------


def verdicts_html(verdicts: pd.DataFrame, page_folder: str = "book") -> str:
    """The verdict table (:func:`gradcam_core.claims.verdict_table`) as HTML for a book page in
    ``page_folder``: the claim (its id linking to the section that shows it), the paper's
    numbers, this report's and the verdict; extensions of the seed reproduction and claims of later
    work marked as such (:data:`gradcam_core.claims.KIND_NAMES`)."""
    depth = len(Path(page_folder).parts)
    rows = []
    for r in verdicts.to_dict("records"):
        target = html.escape("../" * depth + r["link"] + ".html")
        kind = claims.KIND_NAMES[r["kind"]]
        kind = f" <em>({kind})</em>" if kind else ""
        rows.append(
            {
                "claim": f'<a href="{target}"><b>{html.escape(r["claim"])}</b></a>{kind}<br>'
                f"{html.escape(r['statement'])}",
                "paper": f"<small>{html.escape(r['section'])}</small><br>{html.escape(r['paper'])}",
                "this report": html.escape(r["this report"]).replace(" | ", "<br>").replace("; ", "<br>"),
                "verdict": f"<b>{html.escape(r['verdict'])}</b>",
            }
        )
    return pd.DataFrame(rows).to_html(index=False, escape=False, border=0, classes="verdicts")


# --------------------------------------------------------------------------------------------
# Task 1: localisation
# --------------------------------------------------------------------------------------------

_LOCALIZATION_COLUMNS = (
    ("cls_top1", "cls top-1 err"),
    ("cls_topk", "cls top-5 err"),
    ("loc_top1", "loc top-1 err"),
    ("loc_topk", "loc top-5 err"),
)


#: How the ``boxing`` column reads on the page.
BOXING_LABELS = {"threshold": "{:.0%} of max", "grab-cut": "grab-cut", "fixed": "fixed box"}


def _boxing_label(boxing: str, threshold: float) -> str:
    return BOXING_LABELS[boxing].format(threshold) if boxing == "threshold" else BOXING_LABELS[boxing]


def _at_threshold(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The rows boxed at ``threshold`` and every row boxed without one (grab-cut, baselines)."""
    return table[(table["threshold"] == threshold) | table["threshold"].isna()]


def localization_summary(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Task 1 table: per model, method and box procedure (the threshold rows at ``threshold``,
    grab-cut rows, the fixed boxes of the baselines), classification and localisation top-1 /
    top-k error in % with 95 % Wilson intervals."""
    rows = []
    for (model, method, boxing), group in _at_threshold(table, threshold).groupby(
        ["model", "method", "boxing"], sort=False
    ):
        row = {
            "model": model,
            "method": method,
            "boxes": _boxing_label(boxing, threshold),
            "images": len(group),
        }
        for column, name in _LOCALIZATION_COLUMNS:
            row[name] = _error_cell(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


def classification_vs_documented(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, the classification error (%) on this run's images beside the error its
    documentation gives for all 50,000 val images: how much easier the embedded subset is."""
    documented = load_reference("models")
    rows = []
    for model, group in table.drop_duplicates(["model", "image"]).groupby("model", sort=False):
        reference = documented.get(model)
        rows.append(
            {
                "model": model,
                "images": len(group),
                "top-1 err here": _error_cell(group["cls_top1"]),
                "top-1 err, all 50,000 (documented)": (
                    f"{100 - reference['top1']:.1f}" if reference else "n/a"
                ),
                "top-5 err here": _error_cell(group["cls_topk"]),
                "top-5 err, all 50,000 (documented)": (
                    f"{100 - reference['top5']:.1f}" if reference else "n/a"
                ),
            }
        )
    return pd.DataFrame(rows)


def first_images(table: pd.DataFrame, count: int) -> set:
    """The names of the first ``count`` images of a per-image table, in the order of its rows."""
    return set(pd.unique(table["image"])[:count])


def sweep_sample(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the images on which the threshold sweep ran (per model: those whose maps were
    boxed at every threshold of the run; all images unless the run limited its sweep,
    ``sweep_images`` of :func:`gradcam_core.tasks.localization.run_localization`)."""
    swept = table[table["boxing"] == "threshold"]
    if swept.empty:
        return table
    counts = swept.groupby(["model", "image"], sort=False)["threshold"].nunique()
    full = swept.groupby("model", sort=False)["threshold"].nunique()
    keep = counts[counts.to_numpy() == full.reindex(counts.index.get_level_values("model")).to_numpy()]
    index = pd.MultiIndex.from_frame(table[["model", "image"]])
    unswept = ~table["model"].isin(full.index)  # a model without thresholded maps keeps its rows
    return table[index.isin(keep.index) | unswept.to_numpy()]


def sweep_sample_check(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Whether the sweep's sample (:func:`sweep_sample`) stands for all images: per model and
    thresholded method, the top-1 localisation error in % at the headline ``threshold`` on the
    sample with its 95 % Wilson interval and on every image, and whether the error on every
    image lies within the sample's interval (``within``: the sample's numbers are as good as
    their interval says)."""
    at_headline = table[(table["boxing"] == "threshold") & np.isclose(table["threshold"], threshold)]
    sample = sweep_sample(table)
    sample = sample[(sample["boxing"] == "threshold") & np.isclose(sample["threshold"], threshold)]
    rows = []
    for (model, method), group in at_headline.groupby(["model", "method"], sort=False):
        swept = sample[(sample["model"] == model) & (sample["method"] == method)]["loc_top1"]
        error, low, high = error_with_ci(swept)
        everywhere = 100 * (1 - group["loc_top1"].astype(bool).mean())
        rows.append(
            {
                "model": model,
                "method": method,
                "sample images": len(swept),
                "sample loc top-1 err": _with_interval(error, low, high),
                "all images": len(group),
                "all images loc top-1 err": round(everywhere, 2),
                "within": bool(low <= everywhere <= high),
            }
        )
    return pd.DataFrame(rows)


def tune_thresholds(table: pd.DataFrame, tuning_images: int) -> pd.DataFrame:
    """Per model and map method, the threshold with the lowest top-1 localisation error on the
    tuning split (the first ``tuning_images`` images; ties go to the lower threshold), and
    that error in %. The other images are left to report on (:func:`tuned_table`)."""
    tuning = table[table["image"].isin(first_images(table, tuning_images)) & (table["boxing"] == "threshold")]
    error = 100 * (1 - tuning.groupby(["model", "method", "threshold"], sort=True)["loc_top1"].mean())
    best = error.reset_index().sort_values(["model", "method", "loc_top1", "threshold"], kind="stable")
    best = best.groupby(["model", "method"], sort=False).head(1)
    return best.rename(columns={"loc_top1": "tuning loc top-1 err"}).reset_index(drop=True).round(2)


def tuned_table(table: pd.DataFrame, tuned: pd.DataFrame, tuning_images: int) -> pd.DataFrame:
    """The per-image rows of the test split (every image of the sweep's sample,
    :func:`sweep_sample`, after the first ``tuning_images``) with each map method at its tuned
    threshold (:func:`tune_thresholds`), and the baselines."""
    sample = sweep_sample(table)
    test = sample[~sample["image"].isin(first_images(sample, tuning_images))]
    chosen = test.merge(tuned[["model", "method", "threshold"]], on=["model", "method", "threshold"])
    return pd.concat([chosen, test[test["boxing"] == "fixed"]], ignore_index=True)


def tuned_summary(tuned_rows: pd.DataFrame) -> pd.DataFrame:
    """Task 1 at tuned thresholds: per model and method, the threshold and the localisation
    errors in % (95 % Wilson intervals) on the test split."""
    rows = []
    for (model, method), group in tuned_rows.groupby(["model", "method"], sort=False):
        threshold = group["threshold"].iloc[0]
        row = {
            "model": model,
            "method": method,
            "boxes": "fixed box" if pd.isna(threshold) else f"{threshold:.0%} of max",
            "images": len(group),
        }
        for column, name in _LOCALIZATION_COLUMNS[2:]:
            row[name] = _error_cell(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


def _joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty tables of ``parts`` one under the other (an empty table when none is)."""
    parts = [part for part in parts if len(part)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _selection(table: pd.DataFrame, selector: dict) -> pd.DataFrame:
    rows = np.ones(len(table), bool)
    for column, value in selector.items():
        rows &= (table[column] == value).to_numpy()
    return table[rows]


def paired_comparison(
    table: pd.DataFrame, a: dict, b: dict, metric: str, label: str, *, pair_on=("image",), seed: int = 0
) -> pd.DataFrame:
    """Per model: side ``a`` against side ``b`` (column filters of ``table``) on the images
    both have -- the mean of ``metric`` on each side, their paired difference ``a - b`` with
    its 95 % paired bootstrap interval (:func:`gradcam_core.statistics.paired_difference`) and,
    for right/wrong metrics, McNemar's exact p. Proportions in %."""
    keys = ["model", *pair_on]
    both = _selection(table, a)[keys + [metric]].merge(
        _selection(table, b)[keys + [metric]], on=keys, suffixes=(" a", " b")
    )
    rows = []
    for model, group in both.groupby("model", sort=False):
        x, y = group[f"{metric} a"], group[f"{metric} b"]
        binary = x.dtype == bool
        scale = 100 if binary else 1
        diff = statistics.paired_difference(x.astype(float), y.astype(float), seed=seed)
        digits = 1 if binary else 3
        rows.append(
            {
                "model": model,
                "comparison": label,
                "images": diff.n,
                "a": round(scale * float(x.mean()), digits),
                "b": round(scale * float(y.mean()), digits),
                "a - b": _with_interval(scale * diff.mean, scale * diff.low, scale * diff.high, digits),
                **({"McNemar p": f"{statistics.mcnemar_p(x, y):.2g}"} if binary else {}),
            }
        )
    return pd.DataFrame(rows)


def _comparisons(specs, metric: str, names: dict, seed: int) -> pd.DataFrame:
    """:func:`paired_comparison` for each ``(table, label, a, b)`` of ``specs``, the non-empty
    results one under the other, columns renamed by ``names``."""
    parts = [paired_comparison(table, a, b, metric, label, seed=seed) for table, label, a, b in specs]
    return _joined(parts).rename(columns=names)


#: Task 1's comparisons of Grad-CAM with each baseline on the same images, as (label, the
#: Grad-CAM rows, the baseline's rows): the paper's protocol (Grad-CAM at 15 %, Backprop and
#: c-MWP boxed by grab-cut) and the plain threshold for every method.
LOCALIZATION_COMPARISONS = (
    (
        "grad-cam 15 % vs c-mwp grab-cut",
        {"method": "grad-cam", "threshold": 0.15},
        {"method": "c-mwp", "boxing": "grab-cut"},
    ),
    (
        "grad-cam 15 % vs backprop grab-cut",
        {"method": "grad-cam", "threshold": 0.15},
        {"method": "backprop", "boxing": "grab-cut"},
    ),
    (
        "grad-cam 15 % vs excitation-bp grab-cut",
        {"method": "grad-cam", "threshold": 0.15},
        {"method": "excitation-backprop", "boxing": "grab-cut"},
    ),
    (
        "grad-cam 15 % vs c-mwp 15 %",
        {"method": "grad-cam", "threshold": 0.15},
        {"method": "c-mwp", "threshold": 0.15},
    ),
    (
        "grad-cam 15 % vs cam 15 %",
        {"method": "grad-cam", "threshold": 0.15},
        {"method": "cam", "threshold": 0.15},
    ),
    ("grad-cam 15 % vs centre box", {"method": "grad-cam", "threshold": 0.15}, {"method": "centre-box"}),
)


def localization_comparisons(
    table: pd.DataFrame, tuned_rows: pd.DataFrame | None = None, seed: int = 0
) -> pd.DataFrame:
    """Task 1's paired comparisons (:data:`LOCALIZATION_COMPARISONS`, then Grad-CAM against
    c-MWP and Backprop each at its tuned threshold on the test split): top-1 localisation
    error in %, the difference Grad-CAM minus baseline (negative: Grad-CAM localises better)."""
    wrong = table.assign(loc_top1=~table["loc_top1"].astype(bool))
    specs = [(wrong, label, a, b) for label, a, b in LOCALIZATION_COMPARISONS]
    if tuned_rows is not None:
        wrong = tuned_rows.assign(loc_top1=~tuned_rows["loc_top1"].astype(bool))
        gradcam = {"method": "grad-cam"}
        specs += [
            (wrong, f"grad-cam vs {b}, both tuned", gradcam, {"method": b}) for b in ("c-mwp", "backprop")
        ]
    names = {"a": "grad-cam err", "b": "baseline err", "a - b": "difference (pp)"}
    return _comparisons(specs, "loc_top1", names, seed)


def threshold_sweep(table: pd.DataFrame) -> pd.DataFrame:
    """Localisation error (%) per model, method and map threshold, on the sweep's sample
    (:func:`sweep_sample`: every threshold on the same images)."""
    swept = sweep_sample(table).dropna(subset=["threshold"])
    out = swept.groupby(["model", "method", "threshold"], sort=False)[["loc_top1", "loc_topk"]].mean()
    names = {"loc_top1": "loc top-1 err", "loc_topk": "loc top-5 err"}
    return (100 * (1 - out)).round(2).rename(columns=names).reset_index()


def threshold_sweep_top1(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep's top-1 localisation error with thresholds as rows, (model, method) as columns."""
    return sweep.pivot_table(index="threshold", columns=["model", "method"], values="loc top-1 err")


def _source_row(source: str, model: str, **values) -> dict:
    """One row of a "beside the paper" table: where the numbers come from, the model, the values."""
    return {"source": source, "model": model, **values}


def localization_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's map-method rows beside the paper's Table 1 and the seed's table."""
    paper = load_reference("paper")["localization_ilsvrc15_val"]["rows"]
    seed = load_reference("seed")["task1_localization_ilsvrc15_val"]
    ours = summary[summary["method"].isin(["grad-cam", "cam", "backprop", "c-mwp"])].to_dict("records")
    rows = [
        _source_row(
            f"this report ({r['images']} ILSVRC val images)",
            r["model"],
            method=f"{r['method']} ({r['boxes']})",
            **{name: r[name] for _, name in _LOCALIZATION_COLUMNS},
        )
        for r in ours
    ]
    paper_boxes = {"backprop": "grab-cut", "c-mwp": "grab-cut"}
    references = [
        (f"paper Table 1 ({p['status']})", f"{p['method']} ({paper_boxes.get(p['method'], '15% of max')})", p)
        for p in paper
    ]
    references += [("DD2412 reproduction", "grad-cam (15% of max)", s) for s in seed]
    for source, method, reference in references:
        values = {name: reference[key.replace("topk", "top5")] for key, name in _LOCALIZATION_COLUMNS}
        rows.append(_source_row(source, reference["model"], method=method, **values))
    return pd.DataFrame(rows).astype(str)


# --------------------------------------------------------------------------------------------
# Task 2: pointing game
# --------------------------------------------------------------------------------------------


#: The pointing game's image sets: all images, and Zhang et al.'s "difficult" ones (the cued
#: class's boxes cover under a quarter of the image).
POINTING_SUBSETS = {"all": None, "difficult": True}


def _pointing_subsets(table: pd.DataFrame):
    """Each image set of :data:`POINTING_SUBSETS` with its ground-truth-cued rows, keeping per
    model only the methods that ran on every image of the set (c-MWP runs on the difficult
    images by default, so it has no "all images" row)."""
    cued = table[table["is_gt"]]
    for subset, flag in POINTING_SUBSETS.items():
        chosen = cued if flag is None else cued[cued["difficult"] == flag]
        images = chosen.groupby("model")["image"].transform("nunique")
        counts = chosen.groupby(["model", "method"])["image"].transform("nunique")
        yield subset, chosen[counts == images]


def pointing_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 2 table: per model, image set (:data:`POINTING_SUBSETS`) and method (Grad-CAM, the
    ground-truth-cued baselines such as c-MWP, the centre point), the pointing accuracy with the
    ground-truth cue in % with its 95 % Wilson interval, and the mean per-class accuracy
    (:func:`metrics.class_accuracies`) with a 95 % bootstrap interval over classes."""
    rows = []
    for subset, chosen in _pointing_subsets(table):
        for (model, method), group in chosen.groupby(["model", "method"], sort=False):
            hit = group["hit"].to_numpy(bool)
            per_class = metrics.class_accuracies(hit, group["label"].to_numpy())
            c_low, c_high = metrics.bootstrap_ci(per_class, seed=seed)
            rows.append(
                {
                    "model": model,
                    "images": subset,
                    "method": method,
                    "n": len(group),
                    "accuracy": _with_interval(*statistics.proportion_with_ci(hit)),
                    "mean per-class accuracy": _with_interval(
                        100 * per_class.mean(), 100 * c_low, 100 * c_high
                    ),
                }
            )
    return pd.DataFrame(rows)


def pointing_saturation(summary: pd.DataFrame) -> str:
    """Per model, Grad-CAM's and the centre point's accuracy on all images
    (:func:`pointing_summary`), as text for the page: how close a fixed guess comes."""
    every = summary[summary["images"] == "all"].set_index(["model", "method"])["accuracy"]
    text = "; ".join(
        f"{model}: Grad-CAM {every[(model, 'grad-cam')]} %, centre point {every[(model, 'centre')]} %"
        for model in dict.fromkeys(every.index.get_level_values("model"))
        if (model, "grad-cam") in every and (model, "centre") in every
    )
    return text or "n/a (no run of both on all images)"


def pointing_comparisons(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 2's paired comparisons on the same images (ground-truth cue): Grad-CAM against
    c-MWP and against the centre point, on all images and on the difficult ones; pointing
    accuracy in %, the difference with its paired bootstrap interval and McNemar's p."""
    specs = []
    for subset, chosen in _pointing_subsets(table):
        for baseline in ("c-mwp", "centre"):
            label = f"grad-cam vs {baseline}, {subset} images"
            specs.append((chosen, label, {"method": "grad-cam"}, {"method": baseline}))
    names = {"a": "grad-cam (%)", "b": "baseline (%)", "a - b": "difference (pp)"}
    return _comparisons(specs, "hit", names, seed)


def reject_all_accuracy(table: pd.DataFrame) -> pd.Series:
    """Per model, the recall variant's accuracy (%) when every prediction is rejected: the share
    of predicted classes absent from the image. On one-label ILSVRC images about 4 of 5 top-5
    predictions are absent, so this trivial rule scores about 80 %."""
    preds = table[(table["method"] == "grad-cam") & (table["rank"] > 0)]
    return (100 * (1 - preds.groupby("model", sort=False)["is_gt"].mean())).round(2)


def pointing_vs_paper(curve: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The paper's pointing accuracies (Sec. 4.3: top-5 predictions with rejection, on COCO
    with a COCO-fine-tuned GoogLeNet) beside this report's same variant on ILSVRC (the recall
    variant, :func:`pointing_recall_curve`): its best accuracy over the rejection thresholds
    and the accuracy at the threshold that keeps every prediction. The seed's numbers come from
    another protocol (top-1 cue, no tolerance) and are listed as such. Each model also gets the
    accuracy of rejecting every prediction (:func:`reject_all_accuracy`), the trivial reference."""
    accuracy = "accuracy (%)"
    reject_all = reject_all_accuracy(table)
    rows = []
    for model, group in curve.groupby("model", sort=False):
        best = group.loc[group["accuracy"].idxmax()]
        rows.append(
            _source_row(
                "this report, ILSVRC val, top-5 with rejection",
                model,
                method="grad-cam",
                **{accuracy: f"{best['accuracy']:.2f} (best threshold; recall {best['recall']:.1f} %)"},
            )
        )
        rows.append(
            _source_row(
                "this report, ILSVRC val, rejecting every prediction",
                model,
                method="none (trivial)",
                **{accuracy: f"{reject_all[model]:.2f}"},
            )
        )
    for p in load_reference("paper")["pointing_game"]["rows"]:
        values = {"method": p["method"], accuracy: f"{p['accuracy_pct']:.2f}"}
        rows.append(_source_row(f"paper Sec. 4.3, {p['dataset']}, {p['protocol']}", p["model"], **values))
    for s in load_reference("seed")["task2_pointing_game_ilsvrc15_val"]:
        values = {"method": "grad-cam", accuracy: f"{100 * s['accuracy']:.2f}"}
        rows.append(
            _source_row("DD2412 reproduction, ILSVRC val, top-1 cue, no tolerance", s["model"], **values)
        )
    return pd.DataFrame(rows)


def pointing_recall_curve(table: pd.DataFrame, thresholds=41) -> pd.DataFrame:
    """Recall variant: the top-5 predictions' maps, a prediction rejected when its map's raw
    (unnormalised) maximum is below ``t``; ``thresholds`` is a list of values, or a count of
    evenly spaced quantiles of each model's raw maxima (raw scales differ between models).
    Over all (image, predicted class) pairs: a kept ground-truth class counts as a hit when its
    map points into a box, a rejected absent class counts as a hit;
    accuracy = hits / pairs. Recall = fraction of images whose ground-truth class (when
    predicted) is kept."""
    table = table[table["method"] == "grad-cam"]
    preds = table[table["rank"] > 0]
    gt_hit = table[table["is_gt"]].set_index(["model", "image"])["hit"]
    rows = []
    for model, group in preds.groupby("model", sort=False):
        hits_if_kept = np.where(group["is_gt"], gt_hit.loc[model].reindex(group["image"]).to_numpy(), False)
        if np.isscalar(thresholds):
            values = np.quantile(group["raw_max"], np.linspace(0, 1, thresholds))
        else:
            values = thresholds
        for t in values:
            kept = group["raw_max"].to_numpy() >= t
            correct = np.where(group["is_gt"], kept & hits_if_kept, ~kept)
            present = group["is_gt"].to_numpy()
            rows.append(
                {
                    "model": model,
                    "threshold": t,
                    "accuracy": 100 * correct.mean(),
                    "recall": 100 * kept[present].mean() if present.any() else np.nan,
                }
            )
    return pd.DataFrame(rows).round(2)


def curve_excerpt(curve: pd.DataFrame, rows: int = 8) -> pd.DataFrame:
    """About ``rows`` evenly spaced points of each model's curve, for a table under its figure."""
    return curve.groupby("model").apply(lambda g: g.iloc[:: max(1, len(g) // rows)], include_groups=False)


# --------------------------------------------------------------------------------------------
# Task 3: rank correlation with occlusion
# --------------------------------------------------------------------------------------------


def correlation_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 3: per model, rank resolution and method, mean, std and 95 % bootstrap interval of
    the per-image Spearman correlation with the occlusion map (images where a map is constant
    are dropped)."""
    rows = []
    for (model, resolution, method), group in table.groupby(["model", "resolution", "method"], sort=False):
        values = group["spearman"].dropna().to_numpy()
        rows.append(
            {
                "model": model,
                "resolution": str(resolution),
                "method": method,
                "images": len(values),
                "mean": round(values.mean(), 3),
                "std": round(values.std(ddof=1), 3),
                "95% CI": _interval(values, seed),
            }
        )
    return pd.DataFrame(rows)


#: Task 3's paired comparisons: the paper's ordering Guided Grad-CAM > Grad-CAM > Guided
#: Backprop, and Grad-CAM against c-MWP and CAM.
CORRELATION_COMPARISONS = (
    ("guided-grad-cam", "grad-cam"),
    ("grad-cam", "guided-backprop"),
    ("grad-cam", "c-mwp"),
    ("grad-cam", "cam"),
)


def correlation_comparisons(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 3's paired comparisons (:data:`CORRELATION_COMPARISONS`) at each rank resolution:
    the mean Spearman correlations and the mean per-image difference with its 95 % paired
    bootstrap interval (positive: the first method agrees better with occlusion)."""
    specs = []
    for resolution, at in table.groupby("resolution", sort=False):
        size = "full resolution" if str(resolution) == "full" else f"{resolution} x {resolution}"
        specs += [
            (at, f"{a} vs {b}, {size}", {"method": a}, {"method": b}) for a, b in CORRELATION_COMPARISONS
        ]
    return _comparisons(specs, "spearman", {}, seed)


def correlation_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's mean rank correlations (each model and rank resolution) beside the
    paper's (PASCAL VOC 2007) and the seed's."""
    paper = {r["method"]: r["value"] for r in load_reference("paper")["occlusion_rank_correlation"]["rows"]}
    seed = {r["method"]: r for r in load_reference("seed")["task3_occlusion_rank_correlation"]}
    out = summary.pivot_table(index="method", columns=["model", "resolution"], values="mean", sort=False)
    out.columns = [f"{model}, {resolution}" for model, resolution in out.columns]
    out = out.astype(object).where(out.notna(), "n/a")
    out["paper (VOC 2007, 2510 images)"] = [paper.get(m, "n/a") for m in out.index]
    out["DD2412 (120 ILSVRC images, argsort bug)"] = [
        seed[m]["mean"] if m in seed else "n/a" for m in out.index
    ]
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# Task 4: the trust user study
# --------------------------------------------------------------------------------------------

TRUST_SUMMARY_COLUMNS = ["method", "ratings", "raters", "mean", "std", "95% CI", "Wilcoxon p (vs 0)"]


def trust_summary(signed: pd.DataFrame | None, seed: int = 0) -> pd.DataFrame:
    """Per method: ratings, raters, mean, std and 95 % bootstrap interval of the signed rating,
    and the Wilcoxon signed-rank test against 0 (scipy; zero ratings dropped, as Wilcoxon's
    original procedure does). ``None`` (no responses) gives the table with no rows.

    Its interval and test treat every rating as independent, which they are not (each rater
    rates every stimulus): the report shows :func:`trust_summary_by_rater` instead, whose
    interval and test take the rater as the unit."""
    from scipy import stats

    if signed is None:
        return pd.DataFrame(columns=TRUST_SUMMARY_COLUMNS)
    rows = []
    for method, group in signed.groupby("method", sort=True):
        values = group["signed"].to_numpy(np.float64)
        nonzero = values[values != 0]
        p_value = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 1 else float("nan")
        rows.append(
            {
                "method": method,
                "ratings": len(values),
                "raters": group["rater"].nunique(),
                "mean": round(float(values.mean()), 3),
                "std": round(float(values.std(ddof=1)), 3) if len(values) > 1 else float("nan"),
                "95% CI": _interval(values, seed),
                "Wilcoxon p (vs 0)": p_value,
            }
        )
    return pd.DataFrame(rows, columns=TRUST_SUMMARY_COLUMNS)


TRUST_BY_RATER_COLUMNS = [
    "method",
    "raters",
    "ratings",
    "mean",
    "std",
    "mean of rater means",
    "95% CI (raters resampled)",
    "Wilcoxon p (rater means vs 0)",
]


def trust_summary_by_rater(signed: pd.DataFrame | None, seed: int = 0) -> pd.DataFrame:
    """Task 4 table, the rater as the unit of analysis: per method, the ratings' mean and std
    (descriptive, over all ratings), then the mean of the per-rater means with its 95 % interval
    from resampling raters and the Wilcoxon signed-rank p of the per-rater means against 0; last,
    the paired per-rater difference Guided Grad-CAM minus Guided Backpropagation
    (:func:`gradcam_core.tasks.user_study.per_rater_test`, which says why and how). ``None`` (no
    responses) gives the table with no rows."""
    from .tasks.user_study import per_rater_test

    if signed is None:
        return pd.DataFrame(columns=TRUST_BY_RATER_COLUMNS)
    by_rating = signed.groupby("method")["signed"]
    test = per_rater_test(signed, seed=seed)
    test["mean"] = test["method"].map(by_rating.mean().round(3))  # NaN on the difference rows
    test["std"] = test["method"].map(by_rating.std(ddof=1).round(3))
    test["95% CI (raters resampled)"] = [
        statistics.format_bounds(low, high, 3) if np.isfinite(low) else ""
        for low, high in zip(test["95% CI low"], test["95% CI high"])
    ]
    test["Wilcoxon p (rater means vs 0)"] = test["Wilcoxon p"]
    return test[TRUST_BY_RATER_COLUMNS]


def rater_consistency(signed: pd.DataFrame) -> pd.DataFrame:
    """Per rater: ratings, mean signed rating, and consistency -- the share of the rater's
    non-zero ratings whose sign agrees with the sign of the rater's mean (1 = always the same
    direction; NaN when all ratings are 0)."""
    rows = []
    for rater, group in signed.groupby("rater", sort=True):
        values = group["signed"].to_numpy()
        mean = values.mean()
        nonzero = values[values != 0]
        if len(nonzero) and mean != 0:
            consistency = float((np.sign(nonzero) == np.sign(mean)).mean())
        else:
            consistency = float("nan")
        rows.append(
            {
                "rater": rater,
                "ratings": len(values),
                "mean": round(float(mean), 3),
                "consistency": round(consistency, 3) if np.isfinite(consistency) else consistency,
            }
        )
    return pd.DataFrame(rows)


def pruning_table(sweep: pd.DataFrame, chosen: float) -> pd.DataFrame:
    """The pruning sweep of the trust study's pair (:func:`gradcam_core.tasks.user_study.pruning_sweep`):
    per pruned fraction, top-1 accuracy in % with its Wilson interval on the images and the gap in
    points below the unpruned model; the ``chosen`` fraction (the registry's model) marked."""
    return pd.DataFrame(
        {
            "weights set to 0": [f"{100 * f:.1f} %" for f in sweep["fraction"]],
            "images": sweep["images"],
            "top-1 % (95 % CI)": [
                _with_interval(t, lo, hi, 1) for t, lo, hi in zip(sweep["top1"], sweep["low"], sweep["high"])
            ],
            "gap (points)": [f"{g:.1f}" for g in sweep["gap"]],
            "the study's model": [
                "squeezenet1_1" if f == 0 else ("squeezenet1_1-pruned" if f == chosen else "")
                for f in sweep["fraction"]
            ],
        }
    )


def texture_table(match: pd.DataFrame) -> pd.DataFrame:
    """The texture match of each pair of models and method
    (:func:`gradcam_core.tasks.user_study.texture_match`), rounded: mean high-frequency energy of
    each model's pictures, their ratio and whether it is within the tolerance."""
    return match.assign(
        **{
            "energy A": match["energy A"].map("{:.3f}".format),
            "energy B": match["energy B"].map("{:.3f}".format),
            "ratio": match["ratio"].map("{:.2f}".format),
            "matched": match["matched"].map({True: "yes", False: "no"}),
        }
    )


def power_table(analysis: pd.DataFrame) -> pd.DataFrame:
    """The power analysis (:func:`gradcam_core.tasks.user_study.power_analysis`) as one row per
    effect and one column of raters needed per assumed standard deviation of per-rater values."""
    table = analysis.pivot_table(
        index=["effect", "paper's value"], columns="assumed sd", values="raters needed", sort=False
    )
    table.columns = [f"raters needed, sd {sd:g}" for sd in table.columns]
    return (
        table.astype(int)
        .reset_index()
        .assign(**{"paper's value": lambda t: t["paper's value"].map("{:.2f}".format)})
    )


def trust_vs_paper(summary: pd.DataFrame, methods) -> pd.DataFrame:
    """This study's mean signed rating per method of ``methods`` beside the paper's (Sec. 5.2)
    and the seed's."""
    paper = {r["method"]: r["value"] for r in load_reference("paper")["user_study"]["trust_score"]}
    seed = {r["method"]: r["mean"] for r in load_reference("seed")["task4_user_study_trust"]}
    ours = dict(zip(summary["method"], summary["mean"])) if len(summary) else {}
    counts = dict(zip(summary["method"], summary["ratings"])) if len(summary) else {}
    return pd.DataFrame(
        [
            {
                "method": m,
                "this study": ours.get(m, np.nan),
                "ratings": counts.get(m, 0),
                "paper (VGG-16 vs AlexNet, 54 workers)": paper.get(m, np.nan),
                "DD2412": seed.get(m, np.nan),
            }
            for m in methods
        ]
    )


# --------------------------------------------------------------------------------------------
# Task 5: chest X-rays
# --------------------------------------------------------------------------------------------


def auc_summary(auc: pd.DataFrame) -> pd.DataFrame:
    """Per-finding ROC AUC rounded ("n/a" where the held-out images have no positive or no
    negative), plus the mean over findings that have an AUC (its negatives cell empty: each
    image counts as a negative of several findings, so they do not add up)."""
    out = auc.copy()
    out["auc"] = out["auc"].round(3)
    mean = {
        "finding": "mean (findings with an AUC)",
        "positives": int(out["positives"].sum()),
        "negatives": "",
        "auc": round(float(auc["auc"].dropna().mean()), 3),
    }
    return pd.concat([out, pd.DataFrame([mean])], ignore_index=True)


def xray_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 5: per model, method and threshold, over the (image, finding) pairs with boxes: mean
    ratio of activated pixels inside the box with its 95 % bootstrap interval, mean IoU, the
    pointing-game hit rate, and the mean box share of the image (a uniform map's ratio)."""
    rows = []
    for (model, method, threshold), group in table.groupby(["model", "method", "threshold"], sort=False):
        ratios = group["ratio_inside"].dropna().to_numpy()
        rows.append(
            {
                "model": model,
                "method": method,
                "threshold": threshold,
                "pairs": len(group),
                "ratio inside box": round(float(ratios.mean()), 3),
                "95% CI": _interval(ratios, seed),
                "IoU": round(float(group["iou"].mean()), 3),
                "pointing hit %": round(100 * float(group["pointing_hit"].mean()), 1),
                "box share of image": round(float(group["box_fraction"].mean()), 3),
            }
        )
    return pd.DataFrame(rows)


def xray_vs_seed(summary: pd.DataFrame, threshold: float = metrics.SEED_RATIO_THRESHOLD) -> pd.DataFrame:
    """Ratio inside the box at the seed's threshold: this report's rows beside the seed's two
    DenseNet-121 rows (the paper has no such table), for the methods both have."""
    part = summary[np.isclose(summary["threshold"], threshold)]
    ours = part.pivot(index="model", columns="method", values="ratio inside box")
    ours.index = [f"this report: {m}" for m in ours.index]
    seed = pd.DataFrame(load_reference("seed")["task5_chest_xray_ratio_inside_box"]).set_index("model")
    seed.index = [f"DD2412: {m}" for m in seed.index]
    out = pd.concat([ours, seed[[c for c in seed.columns if c in ours.columns]]])
    out.index.name = "model"
    return out.reset_index()


def xray_conclusions(summary: pd.DataFrame, threshold: float = metrics.SEED_RATIO_THRESHOLD) -> list[str]:
    """One sentence per method at ``threshold`` (every threshold when the run has not that
    one): the ratio inside the box against the box's share of the image (what a map spread
    evenly would score), and the pointing hit rate."""
    at = np.isclose(summary["threshold"], threshold)
    headline = summary[at] if at.any() else summary
    sentences = []
    for r in headline.to_dict("records"):
        verdict = "above" if r["ratio inside box"] > r["box share of image"] else "not above"
        activated = f"{r['ratio inside box']:.3f} of the activated pixels (>= {r['threshold']:.0%} of max)"
        share = f"the box's share of the image ({r['box share of image']:.3f})"
        sentences.append(
            f"{r['method']}: {activated} lie in the box, {verdict} {share}; "
            f"the maximum is inside the box for {r['pointing hit %']:.1f} % of the pairs."
        )
    return sentences


# --------------------------------------------------------------------------------------------
# Task 6: sensitivity
# --------------------------------------------------------------------------------------------

#: An attacked pixel "lay in the upper half of the map" when its normalised value is at least this.
UPPER_HALF_OF_MAP = 0.5


#: The statistics of a sample the Task 6 tables show, and how many values each needs.
_STATISTICS = {
    "mean": (np.mean, 1),
    "std": (lambda v: np.std(v, ddof=1), 2),
    "min": (np.min, 1),
    "max": (np.max, 1),
}


def _describe(values: np.ndarray, prefix: str) -> dict:
    """Mean, std, min and max of ``values`` rounded to 4 digits (NaN where undefined)."""
    return {
        f"{prefix} {name}": round(float(fn(values)), 4) if len(values) >= needed else np.nan
        for name, (fn, needed) in _STATISTICS.items()
    }


def sensitivity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Task 6, one-pixel attacks: success rate, and the normalised Grad-CAM value of the true
    class at the attacked pixel before and after each successful attack (mean, std, min, max)."""
    rows = []
    for model, group in table.groupby("model", sort=False):
        done = group[group["success"]]
        row = {
            "model": model,
            "attacked": len(group),
            "successful": len(done),
            "success rate (%)": round(100 * len(done) / len(group), 1) if len(group) else np.nan,
        }
        for when in ("before", "after"):
            row.update(_describe(done[when].to_numpy(), when))
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_vs_seed(summary: pd.DataFrame) -> pd.DataFrame:
    """The normalised Grad-CAM value at the attacked pixel beside the seed's table."""
    columns = [k for k in summary.columns if k.startswith(("before", "after"))]
    rows = [
        _source_row(
            f"this report ({r['successful']} successful attacks)", r["model"], **{k: r[k] for k in columns}
        )
        for r in summary.to_dict("records")
    ]
    for s in load_reference("seed")["task6_sensitivity_single_pixel"]:
        values = {f"{when} {stat}": s[when][stat] for when in ("before", "after") for stat in _STATISTICS}
        rows.append(_source_row("DD2412 reproduction", s["model"], **values))
    return pd.DataFrame(rows)


def one_pixel_conclusions(summary: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """One sentence per model: how many attacks succeeded, the true class's normalised
    Grad-CAM at the attacked pixel before and after, and how many attacked pixels lay in the
    upper half of the map (>= :data:`UPPER_HALF_OF_MAP`) before."""
    sentences = []
    for r in summary.to_dict("records"):
        done = table[(table["model"] == r["model"]) & table["success"]]
        if not len(done):
            sentences.append(
                f"{r['model']}: none of {r['attacked']} one-pixel attacks succeeded within the budget."
            )
            continue
        salient = int((done["before"] >= UPPER_HALF_OF_MAP).sum())
        sentences.append(
            f"{r['model']}: {len(done)} of {r['attacked']} attacks succeeded. At the attacked pixel the true "
            f"class's normalised Grad-CAM (0 = least, 1 = most salient) was {r['before mean']:.3f} on "
            f"average before and {r['after mean']:.3f} after ({r['after mean'] - r['before mean']:+.3f}); "
            f"{salient} of the {len(done)} attacked pixels lay in the upper half of the map "
            f"(>= {UPPER_HALF_OF_MAP}) before."
        )
    return sentences


def fgsm_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Task 6, FGSM: per model and epsilon, attack success rate (%), mean rank correlation of the
    clean and attacked maps for the true class (all images) and for the adversarial class
    (successful attacks), and the pointing-game hit rate (%) of the true class on the attacked
    image."""
    out = table.groupby(["model", "epsilon"], sort=False).agg(
        images=("image", "size"),
        success=("success", "mean"),
        rank_corr_true=("rank_corr_true", "mean"),
        rank_corr_adversarial=("rank_corr_adversarial", "mean"),
        pointing_hit_true=("pointing_hit_true", "mean"),
    )
    out["success"] *= 100
    out["pointing_hit_true"] *= 100
    names = {
        "success": "success (%)",
        "pointing_hit_true": "pointing hit, true class (%)",
        "rank_corr_true": "rank corr, true class",
        "rank_corr_adversarial": "rank corr, adversarial class",
    }
    return out.round(3).rename(columns=names).reset_index()


def epsilon_label(epsilon: float) -> str:
    """An FGSM step in the units it is chosen in: ``k/255`` of the [0, 1] pixel range."""
    k = round(float(epsilon) * 255, 2)
    return "0" if k == 0 else f"{k:g}/255"


def fgsm_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`fgsm_summary` as the page shows it: epsilon as ``k/255``, rates in % to one
    decimal (48 images cannot support more), correlations to two; "n/a" where no attack
    succeeded (there is no adversarial class at epsilon 0)."""
    shown = summary.copy()
    shown["epsilon"] = shown["epsilon"].map(epsilon_label)
    for column in ("success (%)", "pointing hit, true class (%)"):
        shown[column] = shown[column].map("{:.1f}".format)
    for column in ("rank corr, true class", "rank corr, adversarial class"):
        shown[column] = shown[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}")
    return shown.rename(columns={"epsilon": "epsilon (of 0-1 range)"})


# --------------------------------------------------------------------------------------------
# Task 7: fidelity and contrastivity
# --------------------------------------------------------------------------------------------


def standin_accuracy(standins: dict) -> pd.DataFrame:
    """Per dataset: the stand-in (:class:`~gradcam_core.tasks.fidelity.FidelityStandIn`), its
    train and test split sizes and its accuracy on the whole test split, rounded to 4 digits."""
    rows = [
        {
            "model": s.model.name,
            "train images": len(s.train),
            "test images": len(s.test),
            "test accuracy": round(s.test_accuracy(), 4),
        }
        for s in standins.values()
    ]
    return pd.DataFrame(rows)


def _beyond_random(group: pd.DataFrame, seed: int) -> tuple[float, float, float]:
    """Fidelity minus the random-pixel fidelity at the same occluded fraction, with its 95 %
    paired bootstrap interval: per image, right after the random occlusion minus right after
    the salient one (the accuracy before cancels)."""
    diff = statistics.paired_difference(
        group["correct_after_random"].astype(float), group["correct_after"].astype(float), seed=seed
    )
    return diff.mean, diff.low, diff.high


def fidelity_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 7: per model, method and threshold: accuracy before and after occluding the salient
    pixels, fidelity (the drop), the drop when as many random pixels are occluded, fidelity
    minus that reference with its paired interval (fidelity alone means little: a method that
    marks most pixels salient drops the accuracy whatever it marks), the mean occluded share,
    and mean contrastivity (over images where either class has a salient pixel)."""
    rows = []
    for (model, method, threshold), group in table.groupby(["model", "method", "threshold"], sort=False):
        before = group["correct_before"]
        rows.append(
            {
                "model": model,
                "method": method,
                "threshold": threshold,
                "images": len(group),
                "accuracy before": round(float(before.mean()), 3),
                "accuracy after": round(float(group["correct_after"].mean()), 3),
                "fidelity": round(metrics.fidelity(before, group["correct_after"]), 3),
                "fidelity, random pixels": round(metrics.fidelity(before, group["correct_after_random"]), 3),
                "fidelity - random": _with_interval(*_beyond_random(group, seed), digits=3),
                "occluded share": round(float(group["occluded_fraction"].mean()), 3),
                "contrastivity": round(float(group["contrastivity"].mean()), 3),
                "contrastivity n/a": int(group["contrastivity"].isna().sum()),
            }
        )
    return pd.DataFrame(rows)


#: The seed's column name for each of this report's Task 7 methods (the seed's "shap" is set
#: beside this report's GradientSHAP, the same estimator).
SEED_TASK7_METHODS = {
    "grad-cam": "grad-cam",
    "gradient-shap": "shap",
    "shap-gradient-explainer": "shap",
    "integrated-gradients": "ig",
}


def fidelity_vs_seed(summary: pd.DataFrame, dataset: str, model: str) -> pd.DataFrame:
    """Fidelity, fidelity minus the random-pixel reference (which the seed did not report) and
    contrastivity at 1 % and 10 % of ``model`` (this report's stand-in for ``dataset``,
    "mnist" or "cifar10") beside the seed's numbers, methods as columns."""
    seed = load_reference("seed")["task7_fidelity_contrastivity"][dataset]
    rows = []
    for r in summary[summary["model"] == model].to_dict("records"):
        pct = f"{round(100 * r['threshold'])}pct"
        seed_name = SEED_TASK7_METHODS.get(r["method"], r["method"])
        for metric in ("fidelity", "fidelity - random", "contrastivity"):
            rows.append(
                {
                    "model": r["model"],
                    "metric": metric,
                    "threshold": r["threshold"],
                    "method": r["method"],
                    "this report": r[metric],
                    "DD2412": seed.get(f"{metric}_{pct}", {}).get(seed_name, "n/a"),
                }
            )
    table = pd.DataFrame(rows)
    return table.pivot(index=["metric", "threshold"], columns="method", values=["this report", "DD2412"])


def fidelity_conclusions(summary: pd.DataFrame) -> list[str]:
    """One sentence per model, method and threshold: the occluded share, the accuracy it
    costs (fidelity) beside the cost of as many random pixels, and the contrastivity."""
    sentences = []
    for r in summary.to_dict("records"):
        random = (
            f"{r['fidelity, random pixels']:.3f} for as many random pixels; "
            f"difference {r['fidelity - random']}"
        )
        cost = f"costs {r['fidelity']:.3f} accuracy ({random})"
        sentences.append(
            f"{r['model']}, {r['method']}, t = {r['threshold']:.0%}: occluding {r['occluded share']:.0%} "
            f"of the pixels {cost}; contrastivity {r['contrastivity']:.3f}"
        )
    return sentences


# --------------------------------------------------------------------------------------------
# Beyond the paper: sanity checks, deletion and insertion, Grad-CAM's successors
# --------------------------------------------------------------------------------------------


def _passes_label(passes) -> str:
    """A sanity-check verdict as the chapter prints it."""
    if passes is None or (isinstance(passes, float) and np.isnan(passes)):
        return "n/a"
    return "passes" if passes else "fails"


def sanity_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The sanity checks' verdicts (:func:`gradcam_core.tasks.sanity.sanity_verdicts`) as the
    chapter prints them: per model and method, the mean Spearman correlation of the absolute maps
    with the original ones at the last step (fully randomised model, or permuted labels) over the
    image pairs that have one (``pairs``: constant maps have none), its paired difference from two
    unrelated images' (95 % interval) and SSIM's, and the verdict ("fails" when either interval
    lies above 0)."""
    rows = []
    for r in verdicts.to_dict("records"):
        rows.append(
            {
                "model": r["model"],
                "method": r["method"],
                "pairs": int(r["spearman_abs_n"]),
                "Spearman |map|, randomised": round(r["spearman_abs_randomised"], 3),
                "Spearman |map|, minus unrelated": _with_interval(
                    r["spearman_abs_difference"], r["spearman_abs_low"], r["spearman_abs_high"]
                ),
                "SSIM, minus unrelated": _with_interval(r["ssim_difference"], r["ssim_low"], r["ssim_high"]),
                "sanity check": _passes_label(r["passes"]),
            }
        )
    return pd.DataFrame(rows)


def deletion_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Deletion and insertion (:func:`gradcam_core.tasks.deletion.deletion_summary`) as the
    chapter prints them: per model and method (the reference orders last), the images, the mean
    AUCs with their 95 % intervals and each one's paired difference from Grad-CAM's on the same
    images."""
    rows = []
    for r in summary.to_dict("records"):
        row = {"model": r["model"], "method": r["method"], "images": r["n_images"]}
        for curve in ("deletion", "insertion"):
            row[f"{curve} AUC"] = r[curve]
            difference = (r[f"{curve}_diff"], r[f"{curve}_diff_low"], r[f"{curve}_diff_high"])
            row[f"{curve}, minus Grad-CAM"] = (
                "n/a"
                if r["method"] == "grad-cam" or not np.isfinite(difference[0])
                else _with_interval(*difference)
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _cost_cell(forward_passes: float) -> str:
    """A cost in forward passes: three significant digits below 100, whole passes above."""
    return f"{forward_passes:.3g}" if forward_passes < 100 else f"{forward_passes:,.0f}"


def accuracy_table(accuracies: pd.DataFrame) -> pd.DataFrame:
    """The data randomisation test's accuracies (:class:`gradcam_core.tasks.sanity.DataRandomisationRun`)
    in % with one decimal, the models, splits and labels as they are."""
    return accuracies.assign(accuracy=(100 * accuracies["accuracy"]).round(1)).rename(
        columns={"accuracy": "accuracy (%)"}
    )


def _localization_error(rows: pd.DataFrame) -> str:
    return _error_cell(rows["loc_top1"]) if len(rows) else "n/a"


def successors_table(
    localization: pd.DataFrame,
    tuned_rows: pd.DataFrame,
    pointing: pd.DataFrame,
    deletion: pd.DataFrame,
    verdicts: pd.DataFrame,
    costs: pd.DataFrame,
    methods,
    threshold: float = 0.15,
) -> pd.DataFrame:
    """The chapter's one table of Grad-CAM beside its successors, per model and method of
    ``methods``: Task 1's top-1 localisation error in % at ``threshold`` (the paper's 15 %) and
    at the method's tuned threshold on the held-out images (95 % Wilson intervals), Task 2's
    pointing accuracy in % on the difficult images (ground-truth cue), the deletion and insertion
    AUCs, the sanity-check verdict and the cost of a map as a multiple of one forward pass. A
    method without results in one of the inputs shows "n/a" there (Score-CAM, run on few images,
    has no held-out images for a tuned threshold when all of them are tuning images)."""
    at_threshold = localization[localization["threshold"] == threshold]
    if "is_gt" not in pointing:  # no pointing-game rows (no difficult image)
        pointing = pd.DataFrame(columns=["model", "method", "is_gt", "hit"])
    cued = pointing[pointing["is_gt"].astype(bool)]
    rows = []
    for model in dict.fromkeys(localization["model"]):
        for method in methods:

            def of(table, model=model, method=method):
                return table[(table["model"] == model) & (table["method"] == method)]

            hits = of(cued)["hit"].to_numpy(bool)
            deleted = of(deletion)
            verdict = of(verdicts)
            cost = of(costs)
            tuned = of(tuned_rows)
            rows.append(
                {
                    "model": model,
                    "method": method,
                    f"loc err, {threshold:.0%}": _localization_error(of(at_threshold)),
                    "loc err, tuned": (
                        f"{_localization_error(tuned)} at {tuned['threshold'].iloc[0]:.0%}"
                        if len(tuned)
                        else "n/a"
                    ),
                    "pointing, difficult": (
                        _with_interval(*statistics.proportion_with_ci(hits)) if hits.size else "n/a"
                    ),
                    "deletion AUC": deleted["deletion"].iloc[0] if len(deleted) else "n/a",
                    "insertion AUC": deleted["insertion"].iloc[0] if len(deleted) else "n/a",
                    "sanity check": _passes_label(verdict["passes"].iloc[0]) if len(verdict) else "n/a",
                    "cost (forward passes)": (
                        _cost_cell(cost["forward_passes"].iloc[0]) if len(cost) else "n/a"
                    ),
                }
            )
    return pd.DataFrame(rows)


def identity_table(identities: pd.DataFrame) -> pd.DataFrame:
    """Per model and successor of Grad-CAM (:func:`gradcam_core.tasks.successors.run_gradcam_identities`):
    whether the model's target layer feeds global average pooling and one linear classifier, the
    images, and the largest and the median absolute difference between the successor's
    normalised maps and Grad-CAM's (in scientific notation: a float32 rounding error is about
    1e-7, a visible difference above 1e-2)."""
    rows = []
    for (model, method), group in identities.groupby(["model", "method"], sort=False):
        differences = group["max_abs_difference"].to_numpy(float)
        rows.append(
            {
                "model": model,
                "method": method,
                "pooling + linear classifier": "yes" if bool(group["gap_linear"].iloc[0]) else "no",
                "images": len(group),
                "largest difference": f"{differences.max():.1e}",
                "median difference": f"{np.median(differences):.1e}",
            }
        )
    return pd.DataFrame(rows)


def agreement_table(agreement: pd.DataFrame | None) -> pd.DataFrame | None:
    """The check of a page's recomputation against its published run
    (:func:`gradcam_core.results.check_published_run`) for the page: per results file, the rows
    recomputed, those found in the published run (all of which agreed) and the largest
    difference; None (nothing shown) when the page shows its own run."""
    if agreement is None:
        return None
    table = agreement.rename(columns={"found": "found in the published run (all agree)"})
    largest = [f"{value:.0e}" if value else "0" for value in agreement["largest difference"]]
    return table.assign(**{"largest difference": largest})


def deletion_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """Wang et al. 2020's deletion and insertion AUCs (Score-CAM, Table 3; VGG-16) for Grad-CAM,
    Grad-CAM++ and Score-CAM beside this report's per stand-in model (a
    :func:`gradcam_core.tasks.deletion.deletion_summary`, AUCs with their 95 % intervals)."""
    reference = load_reference("later")["score_cam_deletion_insertion"]["rows"]
    rows = []
    for paper in reference:
        mine = summary[summary["method"] == paper["method"]]
        row = {
            "method": paper["method"],
            "deletion, Wang et al. (VGG-16)": paper["deletion"],
            "insertion, Wang et al. (VGG-16)": paper["insertion"],
        }
        for r in mine.to_dict("records"):
            row[f"deletion, {r['model']}"] = r["deletion"]
            row[f"insertion, {r['model']}"] = r["insertion"]
        rows.append(row)
    return pd.DataFrame(rows).fillna("n/a")
