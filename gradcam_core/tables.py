"""Tables for the page: every summary of a task's per-image results (with its interval), every
table of this report beside the paper's and the seed's numbers, and the short conclusions
printed under them. Inputs are the per-image tables the tasks write (:mod:`gradcam_core.tasks`);
nothing here computes an explanation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics
from .results import load_reference


def error_with_ci(correct, seed: int = 0) -> tuple[float, float, float]:
    """Error rate in % of a boolean array, with its 95 % bootstrap interval."""
    wrong = 1.0 - np.asarray(correct, np.float64)
    low, high = metrics.bootstrap_ci(wrong, seed=seed)
    return 100 * wrong.mean(), 100 * low, 100 * high


def _interval(values, seed: int) -> str:
    """The 95 % bootstrap interval of the mean of ``values`` as ``[low, high]``, 3 decimals."""
    low, high = metrics.bootstrap_ci(values, seed=seed)
    return f"[{low:.3f}, {high:.3f}]"


def _with_interval(value: float, low: float, high: float, digits: int = 1) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


# --------------------------------------------------------------------------------------------
# Task 1: localisation
# --------------------------------------------------------------------------------------------

_LOCALIZATION_COLUMNS = (
    ("cls_top1", "cls top-1 err"),
    ("cls_topk", "cls top-5 err"),
    ("loc_top1", "loc top-1 err"),
    ("loc_topk", "loc top-5 err"),
)


def localization_summary(table: pd.DataFrame, threshold: float, seed: int = 0) -> pd.DataFrame:
    """Task 1 table: per model and method, classification and localisation top-1 / top-k error
    in % with 95 % bootstrap intervals, at the given map threshold (baselines have none)."""
    rows = []
    at = table[(table["threshold"] == threshold) | table["threshold"].isna()]
    for (model, method), group in at.groupby(["model", "method"], sort=False):
        row = {"model": model, "method": method, "images": len(group)}
        for column, name in _LOCALIZATION_COLUMNS:
            row[name] = _with_interval(*error_with_ci(group[column], seed))
        rows.append(row)
    return pd.DataFrame(rows)


def threshold_sweep(table: pd.DataFrame) -> pd.DataFrame:
    """Localisation error (%) per model, method and map threshold."""
    swept = table.dropna(subset=["threshold"])
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
    ours = summary[summary["method"].isin(["grad-cam", "cam", "backprop"])].to_dict("records")
    rows = [
        _source_row(
            f"this report ({r['images']} ILSVRC val images)",
            r["model"],
            method=r["method"],
            **{name: r[name] for _, name in _LOCALIZATION_COLUMNS},
        )
        for r in ours
    ]
    references = [(f"paper Table 1 ({p['status']})", p["method"], p) for p in paper]
    references += [("seed reproduction", "grad-cam", s) for s in seed]
    for source, method, reference in references:
        values = {name: reference[key.replace("topk", "top5")] for key, name in _LOCALIZATION_COLUMNS}
        rows.append(_source_row(source, reference["model"], method=method, **values))
    return pd.DataFrame(rows).astype(str)


# --------------------------------------------------------------------------------------------
# Task 2: pointing game
# --------------------------------------------------------------------------------------------


def pointing_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 2 table: pointing accuracy (ground-truth cue) overall and mean per class
    (:func:`metrics.class_accuracies`), in %, with 95 % bootstrap intervals, for Grad-CAM and the
    centre-point baseline."""
    rows = []
    cued = table[table["is_gt"]]
    for (model, method), group in cued.groupby(["model", "method"], sort=False):
        hit = group["hit"].to_numpy(np.float64)
        low, high = metrics.bootstrap_ci(hit, seed=seed)
        per_class = metrics.class_accuracies(hit, group["label"].to_numpy())
        c_low, c_high = metrics.bootstrap_ci(per_class, seed=seed)
        rows.append(
            {
                "model": model,
                "method": method,
                "images": len(group),
                "accuracy": _with_interval(100 * hit.mean(), 100 * low, 100 * high),
                "mean per-class accuracy": _with_interval(100 * per_class.mean(), 100 * c_low, 100 * c_high),
                "classes": len(per_class),
            }
        )
    return pd.DataFrame(rows)


def pointing_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's pointing accuracy beside the paper's (Sec. 4.3) and the seed's."""
    accuracy = "accuracy (%)"
    rows = [
        _source_row(
            f"this report ({r.images} ILSVRC val images)", r.model, method=r.method, **{accuracy: r.accuracy}
        )
        for r in summary.itertuples(index=False)
    ]
    for p in load_reference("paper")["pointing_game"]["rows"]:
        values = {"method": p["method"], accuracy: f"{p['accuracy_pct']:.2f}"}
        rows.append(_source_row(f"paper Sec. 4.3 ({p['status']})", p["model"], **values))
    for s in load_reference("seed")["task2_pointing_game_ilsvrc15_val"]:
        values = {"method": "grad-cam", accuracy: f"{100 * s['accuracy']:.2f}"}
        rows.append(_source_row("seed reproduction (top-1 cue, no tolerance)", s["model"], **values))
    return pd.DataFrame(rows)


def pointing_recall_curve(table: pd.DataFrame, thresholds=41) -> pd.DataFrame:
    """Recall variant: the top-5 predictions' maps, a prediction rejected when its map's raw
    (unnormalised) maximum is below ``t``; ``thresholds`` is a list of values, or a count of
    evenly spaced quantiles of each model's raw maxima (raw scales differ between models).
    Over all (image, predicted class) pairs: a kept ground-truth class counts as a hit when its
    map points into a box, a rejected absent class counts as a hit;
    accuracy = hits / pairs. Recall = fraction of images whose ground-truth class (when
    predicted) is kept."""
    preds = table[(table["method"] == "grad-cam") & (table["rank"] > 0)]
    gt_hit = table[(table["method"] == "grad-cam") & table["is_gt"]].set_index(["model", "image"])["hit"]
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
    """Task 3: per model and method, mean, std and 95 % bootstrap interval of the per-image
    Spearman correlation with the occlusion map (images where a map is constant are dropped)."""
    rows = []
    for (model, method), group in table.groupby(["model", "method"], sort=False):
        values = group["spearman"].dropna().to_numpy()
        mean, std = round(values.mean(), 3), round(values.std(ddof=1), 3)
        rows.append(
            {
                "model": model,
                "method": method,
                "images": len(values),
                "mean": mean,
                "std": std,
                "95% CI": _interval(values, seed),
            }
        )
    return pd.DataFrame(rows)


def correlation_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's mean rank correlations beside the paper's (PASCAL VOC 2007) and the seed's."""
    paper = {r["method"]: r["value"] for r in load_reference("paper")["occlusion_rank_correlation"]["rows"]}
    seed = {r["method"]: r for r in load_reference("seed")["task3_occlusion_rank_correlation"]}
    out = summary.pivot(index="method", columns="model", values="mean")
    out.columns = [f"this report: {c}" for c in out.columns]
    out["paper (VOC 2007, 2510 images)"] = [paper.get(m, np.nan) for m in out.index]
    out["seed (120 ILSVRC images, argsort bug)"] = [
        seed[m]["mean"] if m in seed else np.nan for m in out.index
    ]
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# Task 4: the trust user study
# --------------------------------------------------------------------------------------------

TRUST_SUMMARY_COLUMNS = ["method", "ratings", "raters", "mean", "std", "95% CI", "Wilcoxon p (vs 0)"]


def trust_summary(signed: pd.DataFrame | None, seed: int = 0) -> pd.DataFrame:
    """Per method: ratings, raters, mean, std and 95 % bootstrap interval of the signed rating,
    and the Wilcoxon signed-rank test against 0 (scipy; zero ratings dropped, as Wilcoxon's
    original procedure does). ``None`` (no responses) gives the table with no rows."""
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
                "seed": seed.get(m, np.nan),
            }
            for m in methods
        ]
    )


# --------------------------------------------------------------------------------------------
# Task 5: chest X-rays
# --------------------------------------------------------------------------------------------


def auc_summary(auc: pd.DataFrame) -> pd.DataFrame:
    """Per-finding ROC AUC rounded, plus the mean over findings that have an AUC."""
    out = auc.copy()
    out["auc"] = out["auc"].round(3)
    mean = {
        "finding": "mean (findings with an AUC)",
        "positives": int(out["positives"].sum()),
        "negatives": np.nan,
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
    seed.index = [f"seed: {m}" for m in seed.index]
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
        rows.append(_source_row("seed reproduction", s["model"], **values))
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


def fidelity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Task 7: per model, method and threshold: accuracy before and after occluding the salient
    pixels, fidelity (the drop), the drop when as many random pixels are occluded, the mean
    occluded share, and mean contrastivity (over images where either class has a salient pixel)."""
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
    """Fidelity and contrastivity at 1 % and 10 % of ``model`` (this report's stand-in for
    ``dataset``, "mnist" or "cifar10") beside the seed's numbers, methods as columns."""
    seed = load_reference("seed")["task7_fidelity_contrastivity"][dataset]
    rows = []
    for r in summary[summary["model"] == model].to_dict("records"):
        pct = f"{round(100 * r['threshold'])}pct"
        seed_name = SEED_TASK7_METHODS.get(r["method"], r["method"])
        for metric in ("fidelity", "contrastivity"):
            rows.append(
                {
                    "model": r["model"],
                    "metric": metric,
                    "threshold": r["threshold"],
                    "method": r["method"],
                    "this report": r[metric],
                    "seed": seed.get(f"{metric}_{pct}", {}).get(seed_name, np.nan),
                }
            )
    table = pd.DataFrame(rows)
    return table.pivot(index=["metric", "threshold"], columns="method", values=["this report", "seed"])


def fidelity_conclusions(summary: pd.DataFrame) -> list[str]:
    """One sentence per model, method and threshold: the occluded share, the accuracy it
    costs (fidelity) beside the cost of as many random pixels, and the contrastivity."""
    sentences = []
    for r in summary.to_dict("records"):
        random = f"{r['fidelity, random pixels']:.3f} for as many random pixels"
        cost = f"costs {r['fidelity']:.3f} accuracy ({random})"
        sentences.append(
            f"{r['model']}, {r['method']}, t = {r['threshold']:.0%}: occluding {r['occluded share']:.0%} "
            f"of the pixels {cost}; contrastivity {r['contrastivity']:.3f}"
        )
    return sentences
