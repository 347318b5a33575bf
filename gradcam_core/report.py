"""Report: summaries with confidence intervals, side-by-side tables with the paper and the seed,
figures, atomic results files and provenance. The notebooks call these; nothing here computes
an explanation.
"""

from __future__ import annotations

import os
import platform
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import metrics

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "data" / "reference"


def load_reference(name: str) -> dict:
    """The paper's (``"paper"``) or the seed's (``"seed"``) numbers, from the committed copy of
    the reference YAML files in ``data/reference``."""
    files = {"paper": "paper_results.yaml", "seed": "seed_results.yaml"}
    if name not in files:
        raise ValueError(f"reference must be 'paper' or 'seed', got {name!r}")
    return yaml.safe_load((REFERENCE_DIR / files[name]).read_text())


@contextmanager
def atomic_file(path: str | Path):
    """A text handle on a temporary file beside ``path``, renamed to ``path`` only when the
    block completes, so a results file is never left half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV atomically (:func:`atomic_file`)."""
    with atomic_file(path) as handle:
        table.to_csv(handle, index=False, float_format="%.6g")
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically (:func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(text)
    return Path(path)


def write_run_times(path: str | Path, seconds: dict) -> Path:
    """Wall time of each model's run, for the provenance page."""
    return write_table(pd.DataFrame({"model": list(seconds), "seconds": [round(v, 1) for v in seconds.values()]}), path)


def error_with_ci(correct, seed: int = 0) -> tuple[float, float, float]:
    """Error rate in % of a boolean array, with its 95 % bootstrap interval."""
    wrong = 1.0 - np.asarray(correct, np.float64)
    low, high = metrics.bootstrap_ci(wrong, seed=seed)
    return 100 * wrong.mean(), 100 * low, 100 * high


def _fmt(value: float, low: float, high: float, digits: int = 1) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def localization_summary(table: pd.DataFrame, threshold: float, seed: int = 0) -> pd.DataFrame:
    """Task 1 table: per model and method, classification and localisation top-1 / top-k error
    in % with 95 % bootstrap intervals, at the given map threshold (baselines have none)."""
    rows = []
    at = table[(table["threshold"] == threshold) | table["threshold"].isna()]
    for (model, method), group in at.groupby(["model", "method"], sort=False):
        row = {"model": model, "method": method, "images": len(group)}
        for column, name in (("cls_top1", "cls top-1 err"), ("cls_topk", "cls top-5 err"),
                             ("loc_top1", "loc top-1 err"), ("loc_topk", "loc top-5 err")):
            row[name] = _fmt(*error_with_ci(group[column], seed))
        rows.append(row)
    return pd.DataFrame(rows)


def threshold_sweep(table: pd.DataFrame) -> pd.DataFrame:
    """Localisation error (%) per model, method and map threshold."""
    swept = table.dropna(subset=["threshold"])
    out = swept.groupby(["model", "method", "threshold"], sort=False)[["loc_top1", "loc_topk"]].mean()
    return (100 * (1 - out)).round(2).rename(columns={"loc_top1": "loc top-1 err", "loc_topk": "loc top-5 err"}).reset_index()


def plot_threshold_sweep(sweep: pd.DataFrame, chosen: float):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, column in zip(axes, ("loc top-1 err", "loc top-5 err")):
        sns.lineplot(data=sweep, x="threshold", y=column, hue="model", style="method", marker="o", ax=ax)
        ax.axvline(chosen, color="grey", ls="--", lw=1)
        ax.set_xlabel("map threshold (fraction of the map's maximum)")
        ax.set_ylabel(f"{column} (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def localization_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's Grad-CAM rows beside the paper's Table 1 and the seed's table."""
    paper = load_reference("paper")["localization_ilsvrc15_val"]["rows"]
    seed = load_reference("seed")["task1_localization_ilsvrc15_val"]
    rows = []
    columns = ["cls top-1 err", "cls top-5 err", "loc top-1 err", "loc top-5 err"]
    for r in summary[summary["method"].isin(["grad-cam", "cam", "backprop"])].to_dict("records"):
        rows.append({"source": f"this report ({r['images']} ILSVRC val images)", "model": r["model"],
                     "method": r["method"], **{c: r[c] for c in columns}})
    for p in paper:
        rows.append({"source": f"paper Table 1 ({p['status']})", "model": p["model"], "method": p["method"],
                     "cls top-1 err": p["cls_top1"], "cls top-5 err": p["cls_top5"],
                     "loc top-1 err": p["loc_top1"], "loc top-5 err": p["loc_top5"]})
    for s in seed:
        rows.append({"source": "seed reproduction", "model": s["model"], "method": "grad-cam",
                     "cls top-1 err": s["cls_top1"], "cls top-5 err": s["cls_top5"],
                     "loc top-1 err": s["loc_top1"], "loc top-5 err": s["loc_top5"]})
    return pd.DataFrame(rows).astype(str)


def pointing_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 2 table: pointing accuracy (ground-truth cue) overall and mean per class, in %,
    with 95 % bootstrap intervals, for Grad-CAM and the centre-point baseline."""
    rows = []
    cued = table[table["is_gt"]]
    for (model, method), group in cued.groupby(["model", "method"], sort=False):
        hit = group["hit"].to_numpy(np.float64)
        low, high = metrics.bootstrap_ci(hit, seed=seed)
        per_class = group.groupby("label")["hit"].mean().to_numpy()
        c_low, c_high = metrics.bootstrap_ci(per_class, seed=seed)
        rows.append({"model": model, "method": method, "images": len(group),
                     "accuracy": _fmt(100 * hit.mean(), 100 * low, 100 * high),
                     "mean per-class accuracy": _fmt(100 * per_class.mean(), 100 * c_low, 100 * c_high),
                     "classes": len(per_class)})
    return pd.DataFrame(rows)


def pointing_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's pointing accuracy beside the paper's (Sec. 4.3) and the seed's."""
    rows = [{"source": f"this report ({r.images} ILSVRC val images)", "model": r.model, "method": r.method,
             "accuracy (%)": r.accuracy} for r in summary.itertuples(index=False)]
    for p in load_reference("paper")["pointing_game"]["rows"]:
        rows.append({"source": f"paper Sec. 4.3 ({p['status']})", "model": p["model"], "method": p["method"],
                     "accuracy (%)": f"{p['accuracy_pct']:.2f}"})
    for s in load_reference("seed")["task2_pointing_game_ilsvrc15_val"]:
        rows.append({"source": "seed reproduction (top-1 cue, no tolerance)", "model": s["model"],
                     "method": "grad-cam", "accuracy (%)": f"{100 * s['accuracy']:.2f}"})
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
        values = (np.quantile(group["raw_max"], np.linspace(0, 1, thresholds)) if np.isscalar(thresholds)
                  else thresholds)
        for t in values:
            kept = group["raw_max"].to_numpy() >= t
            correct = np.where(group["is_gt"], kept & hits_if_kept, ~kept)
            present = group["is_gt"].to_numpy()
            rows.append({"model": model, "threshold": t, "accuracy": 100 * correct.mean(),
                         "recall": 100 * kept[present].mean() if present.any() else np.nan})
    return pd.DataFrame(rows).round(2)


def plot_pointing_curve(curve: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for model, group in curve.groupby("model", sort=False):
        ax.plot(group["recall"], group["accuracy"], marker=".", label=model)
    ax.set_xlabel("recall of the ground-truth class (%)")
    ax.set_ylabel("pointing accuracy over top-5 predictions (%)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_boxes_on_maps(images, heatmaps, gt_boxes, pred_boxes, titles):
    """A grid: each column an image with its ground-truth (green) and predicted (red) boxes,
    above its normalised map with the same boxes."""
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4), squeeze=False)
    for i in range(n):
        for row, background in ((0, images[i]), (1, heatmaps[i])):
            ax = axes[row, i]
            ax.imshow(background, cmap=None if row == 0 else "jet", vmin=0, vmax=1 if row else None)
            for box in gt_boxes[i]:
                ax.add_patch(patches.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, ec="lime", lw=1.5))
            if pred_boxes[i] is not None:
                b = pred_boxes[i]
                ax.add_patch(patches.Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, ec="red", lw=1.5))
            ax.set_axis_off()
        axes[0, i].set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def data_provenance() -> pd.DataFrame:
    """Per embedded group: files, bytes and one sha256 over its files' sorted sha256 list."""
    import hashlib

    from . import data

    manifest = data.read_manifest()
    rows = []
    for group in data.GROUPS:
        part = manifest[manifest["path"].str.startswith(group + "/")].sort_values("path")
        digest = hashlib.sha256("\n".join(part["sha256"]).encode()).hexdigest()
        rows.append({"group": group, "files": len(part), "bytes": int(part["bytes"].sum()), "sha256 of sha256s": digest})
    return pd.DataFrame(rows)


def run_times(results_dir: str | Path) -> pd.DataFrame:
    """All ``run_times.csv`` files under ``results_dir``, one row per task and model."""
    frames = [pd.read_csv(path).assign(task=path.parent.name) for path in sorted(Path(results_dir).glob("*/run_times.csv"))]
    if not frames:
        return pd.DataFrame(columns=["task", "model", "seconds"])
    return pd.concat(frames, ignore_index=True)[["task", "model", "seconds"]]


def provenance() -> dict:
    """Versions and hardware of the run, for the provenance page."""
    import torch

    versions = {}
    for package in ("torch", "torchvision", "numpy", "scipy", "pandas", "captum", "cv2", "papermill"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = "not installed"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        **versions,
    }


# --------------------------------------------------------------------------------------------
# Task 3
# --------------------------------------------------------------------------------------------


def correlation_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 3: per model and method, mean, std and 95 % bootstrap interval of the per-image
    Spearman correlation with the occlusion map (images where a map is constant are dropped)."""
    rows = []
    for (model, method), group in table.groupby(["model", "method"], sort=False):
        values = group["spearman"].dropna().to_numpy()
        low, high = metrics.bootstrap_ci(values, seed=seed)
        rows.append({"model": model, "method": method, "images": len(values), "mean": round(values.mean(), 3),
                     "std": round(values.std(ddof=1), 3), "95% CI": f"[{low:.3f}, {high:.3f}]"})
    return pd.DataFrame(rows)


def correlation_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """This project's mean rank correlations beside the paper's (PASCAL VOC 2007) and the seed's."""
    paper = {r["method"]: r["value"] for r in load_reference("paper")["occlusion_rank_correlation"]["rows"]}
    seed = {r["method"]: r for r in load_reference("seed")["task3_occlusion_rank_correlation"]}
    out = summary.pivot(index="method", columns="model", values="mean")
    out.columns = [f"this report: {c}" for c in out.columns]
    out["paper (VOC 2007, 2510 images)"] = [paper.get(m, np.nan) for m in out.index]
    out["seed (120 ILSVRC images, argsort bug)"] = [seed[m]["mean"] if m in seed else np.nan for m in out.index]
    return out.reset_index()


def plot_correlation_distribution(table: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 3.8))
    sns.boxplot(data=table, x="method", y="spearman", hue="model", ax=ax, fliersize=2)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("Spearman correlation with the occlusion map")
    fig.tight_layout()
    return fig


def plot_map_grid(images, maps: dict, titles):
    """Rows: images; columns: the image, then each named map (normalised, 'jet')."""
    import matplotlib.pyplot as plt

    names = list(maps)
    fig, axes = plt.subplots(len(images), 1 + len(names), figsize=(2.3 * (1 + len(names)), 2.3 * len(images)),
                             squeeze=False)
    for i, image in enumerate(images):
        axes[i, 0].imshow(image)
        axes[i, 0].set_title(titles[i], fontsize=8)
        for j, name in enumerate(names, start=1):
            axes[i, j].imshow(maps[name][i], cmap="jet", vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Task 6
# --------------------------------------------------------------------------------------------


def sensitivity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Task 6, one-pixel attacks: success rate, and the normalised Grad-CAM value of the true
    class at the attacked pixel before and after each successful attack (mean, std, min, max)."""
    rows = []
    for model, group in table.groupby("model", sort=False):
        done = group[group["success"]]
        row = {"model": model, "attacked": len(group), "successful": len(done),
               "success rate (%)": round(100 * len(done) / len(group), 1) if len(group) else np.nan}
        for when in ("before", "after"):
            values = done[when].to_numpy()
            for stat, fn in (("mean", np.mean), ("std", lambda v: np.std(v, ddof=1)), ("min", np.min), ("max", np.max)):
                row[f"{when} {stat}"] = round(float(fn(values)), 4) if len(values) > (1 if stat == "std" else 0) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_vs_seed(summary: pd.DataFrame) -> pd.DataFrame:
    rows = [{"source": f"this report ({r['successful']} successful attacks)", "model": r["model"],
             **{k: r[k] for k in summary.columns if k.startswith(("before", "after"))}}
            for r in summary.to_dict("records")]
    for s in load_reference("seed")["task6_sensitivity_single_pixel"]:
        rows.append({"source": "seed reproduction", "model": s["model"],
                     **{f"{when} {stat}": s[when][stat] for when in ("before", "after") for stat in ("mean", "std", "min", "max")}})
    return pd.DataFrame(rows)


def plot_one_pixel_cases(cases):
    """Each row: the image with the attacked pixel circled, the true class's map before and after."""
    import matplotlib.pyplot as plt

    if not cases:
        return None
    fig, axes = plt.subplots(len(cases), 3, figsize=(7, 2.4 * len(cases)), squeeze=False)
    for row, case in zip(axes, cases):
        x, y = case["xy"]
        for ax, background, title in zip(row, (case["image"], case["before"], case["after"]),
                                         (case["title"], "map before", "map after")):
            ax.imshow(background, cmap=None if background is case["image"] else "jet")
            ax.scatter([x], [y], s=120, facecolors="none", edgecolors="white", linewidths=1.5)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def fgsm_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Task 6, FGSM: per model and epsilon, attack success rate (%), mean rank correlation of the
    clean and attacked maps for the true class (all images) and for the adversarial class
    (successful attacks), and the pointing-game hit rate (%) of the true class on the attacked image."""
    out = table.groupby(["model", "epsilon"], sort=False).agg(
        images=("image", "size"), success=("success", "mean"), rank_corr_true=("rank_corr_true", "mean"),
        rank_corr_adversarial=("rank_corr_adversarial", "mean"), pointing_hit_true=("pointing_hit_true", "mean"))
    out["success"] *= 100
    out["pointing_hit_true"] *= 100
    return out.round(3).rename(columns={"success": "success (%)", "pointing_hit_true": "pointing hit, true class (%)",
                                        "rank_corr_true": "rank corr, true class",
                                        "rank_corr_adversarial": "rank corr, adversarial class"}).reset_index()


def plot_fgsm(summary: pd.DataFrame):
    import matplotlib.pyplot as plt

    columns = ["success (%)", "rank corr, true class", "rank corr, adversarial class", "pointing hit, true class (%)"]
    fig, axes = plt.subplots(1, len(columns), figsize=(14, 3.2))
    for ax, column in zip(axes, columns):
        for model, group in summary.groupby("model", sort=False):
            ax.plot(group["epsilon"], group[column], marker="o", label=model)
        ax.set_xlabel("epsilon (pixel scale 0-1)")
        ax.set_title(column, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Task 5
# --------------------------------------------------------------------------------------------


def auc_summary(auc: pd.DataFrame) -> pd.DataFrame:
    """Per-finding ROC AUC rounded, plus the mean over findings that have an AUC."""
    out = auc.copy()
    out["auc"] = out["auc"].round(3)
    mean = {"finding": "mean (findings with an AUC)", "positives": int(out["positives"].sum()),
            "negatives": np.nan, "auc": round(float(auc["auc"].dropna().mean()), 3)}
    return pd.concat([out, pd.DataFrame([mean])], ignore_index=True)


def xray_summary(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Task 5: per model, method and threshold, over the (image, finding) pairs with boxes: mean
    ratio of activated pixels inside the box with its 95 % bootstrap interval, mean IoU, the
    pointing-game hit rate, and the mean box share of the image (a uniform map's ratio)."""
    rows = []
    for (model, method, threshold), group in table.groupby(["model", "method", "threshold"], sort=False):
        ratios = group["ratio_inside"].dropna().to_numpy()
        low, high = metrics.bootstrap_ci(ratios, seed=seed)
        rows.append({"model": model, "method": method, "threshold": threshold, "pairs": len(group),
                     "ratio inside box": round(float(ratios.mean()), 3), "95% CI": f"[{low:.3f}, {high:.3f}]",
                     "IoU": round(float(group["iou"].mean()), 3),
                     "pointing hit %": round(100 * float(group["pointing_hit"].mean()), 1),
                     "box share of image": round(float(group["box_fraction"].mean()), 3)})
    return pd.DataFrame(rows)


def xray_vs_seed(summary: pd.DataFrame, threshold: float = 0.85) -> pd.DataFrame:
    """Ratio inside the box at the seed's threshold: this report's rows beside the seed's two
    DenseNet-121 rows (the paper has no such table)."""
    part = summary[np.isclose(summary["threshold"], threshold)]
    ours = part.pivot(index="model", columns="method", values="ratio inside box")
    ours.index = [f"this report: {m}" for m in ours.index]
    seed = pd.DataFrame(load_reference("seed")["task5_chest_xray_ratio_inside_box"]).set_index("model")
    seed.index = [f"seed: {m}" for m in seed.index]
    out = pd.concat([ours, seed[[c for c in seed.columns if c in ours.columns]]])
    out.index.name = "model"
    return out.reset_index()


def plot_xray_maps(examples: dict, method: str, ncols: int = 6):
    """One method's normalised maps over the X-rays, the radiologist box in green."""
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    n = len(examples["images"])
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.5 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(examples["images"][i])
        ax.imshow(examples["maps"][method][i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for box in examples["boxes"][i]:
            ax.add_patch(patches.Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False, ec="lime", lw=1.5))
        ax.set_title(examples["titles"][i], fontsize=7)
    fig.suptitle(method, y=1.0)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Task 7
# --------------------------------------------------------------------------------------------


def fidelity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Task 7: per model, method and threshold: accuracy before and after occluding the salient
    pixels, fidelity (the drop), the drop when as many random pixels are occluded, the mean
    occluded share, and mean contrastivity (over images where either class has a salient pixel)."""
    rows = []
    for (model, method, threshold), group in table.groupby(["model", "method", "threshold"], sort=False):
        rows.append({"model": model, "method": method, "threshold": threshold, "images": len(group),
                     "accuracy before": round(float(group["correct_before"].mean()), 3),
                     "accuracy after": round(float(group["correct_after"].mean()), 3),
                     "fidelity": round(metrics.fidelity(group["correct_before"], group["correct_after"]), 3),
                     "fidelity, random pixels": round(metrics.fidelity(group["correct_before"],
                                                                       group["correct_after_random"]), 3),
                     "occluded share": round(float(group["occluded_fraction"].mean()), 3),
                     "contrastivity": round(float(group["contrastivity"].mean()), 3),
                     "contrastivity n/a": int(group["contrastivity"].isna().sum())})
    return pd.DataFrame(rows)


#: The seed's method names for Task 7.
_SEED_TASK7_METHODS = {"grad-cam": "grad-cam", "shap": "shap", "integrated-gradients": "ig"}


def fidelity_vs_seed(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Fidelity and contrastivity at 1 % and 10 % beside the seed's numbers for ``dataset``
    ("mnist" or "cifar10")."""
    seed = load_reference("seed")["task7_fidelity_contrastivity"][dataset]
    rows = []
    for r in summary.to_dict("records"):
        pct = f"{round(100 * r['threshold'])}pct"
        seed_name = _SEED_TASK7_METHODS.get(r["method"], r["method"])
        for metric in ("fidelity", "contrastivity"):
            rows.append({"model": r["model"], "metric": metric, "threshold": r["threshold"], "method": r["method"],
                         "this report": r[metric], "seed": seed.get(f"{metric}_{pct}", {}).get(seed_name, np.nan)})
    return pd.DataFrame(rows)


def plot_fidelity_examples(examples: dict, class_names, threshold: float = 0.10):
    """Rows: images; columns: the image, then per method the 0..1 saliency of the top-1 and the
    top-2 class, the pixels above ``threshold`` outlined."""
    import matplotlib.pyplot as plt

    methods = list(examples["maps"])
    n = len(examples["images"])
    cols = 1 + 2 * len(methods)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.8 * n), squeeze=False)
    gray = examples["images"].ndim == 3
    for i in range(n):
        axes[i, 0].imshow(examples["images"][i], cmap="gray" if gray else None)
        top1, top2 = (class_names[c] for c in examples["classes"][i])
        axes[i, 0].set_title(f"top-1 {top1}", fontsize=7)
        for j, method in enumerate(methods):
            for k, name in enumerate((top1, top2)):
                ax = axes[i, 1 + 2 * j + k]
                saliency = examples["maps"][method][i, k]
                ax.imshow(saliency, cmap="jet", vmin=0, vmax=1)
                ax.contour(saliency > threshold, levels=[0.5], colors="white", linewidths=0.6)
                if i == 0:
                    ax.set_title(f"{method}\n{'top-1' if k == 0 else 'top-2'}", fontsize=7)
                else:
                    ax.set_title(name, fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Task 4
# --------------------------------------------------------------------------------------------


def plot_stimuli(study_dir: str | Path, manifest: pd.DataFrame, count: int = 4):
    """The first ``count`` stimuli as raters see them: the photo, then the left and the right
    explanation, each titled with the model behind it (which raters are not told)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = manifest.head(count).to_dict("records")
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for ax_row, r in zip(axes, rows):
        for ax, file, title in zip(ax_row, (r["original_file"], r["left_file"], r["right_file"]),
                                   (f"{r['stimulus']}: {r['class_name']}", f"left: {r['left_model']}",
                                    f"right: {r['right_model']}")):
            ax.imshow(Image.open(Path(study_dir) / "images" / file))
            ax.set_title(title if file != r["original_file"] else f"{title}\n({r['method']})", fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    return fig
