"""Task 4 (paper Sec. 5.2), the trust user study: the stimuli a study folder holds, and the
analysis of the ratings that raters give through the survey (:mod:`gradcam_core.study`).

The stimuli show, for images both models classify correctly, the explanations of the more
accurate model (VGG-16's role in the paper) and of the other (AlexNet's role) side by side,
left/right drawn with a seed. The analysis signs every rating so that positive means "the more
accurate model is trusted more" and tests it with the rater as the unit of analysis
(:func:`per_rater_test`); its tables are :func:`gradcam_core.tables.trust_summary_by_rater` and
:func:`gradcam_core.tables.rater_consistency`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from .. import data, metrics, models, statistics, study
from ..maps import gradient_image
from ..methods import GuidedBackprop, GuidedGradCAM
from ..results import load_reference, write_table, write_text
from .common import correctly_classified

#: The explainers a study can show, by method name.
STIMULUS_EXPLAINERS = {"guided-backprop": GuidedBackprop, "guided-grad-cam": GuidedGradCAM}


def both_correct(models: dict, records, count: int, seed=0, batch_size=64) -> list:
    """``count`` records that every model in ``models`` classifies right (top-1), drawn by a
    seeded permutation of those that qualify (the paper's condition for the trust study)."""
    right = [
        {r.path for r in correctly_classified(model, records, len(records), batch_size)}
        for model in models.values()
    ]
    good = [r for r in records if all(r.path in paths for paths in right)]
    order = np.random.default_rng(seed).permutation(len(good))[:count]
    return [good[i] for i in sorted(order)]


def make_stimuli(
    accurate, other, records, study_dir, *, methods=study.STUDY_METHODS, n_images=20, seed=0, progress=True
) -> pd.DataFrame:
    """Write a study folder for ``n_images`` images both models classify correctly: per image
    and method, the explanation of ``accurate`` (the more accurate model, in the role of the
    paper's VGG-16) and of ``other`` (AlexNet's role) for the true class, left/right drawn with
    ``seed``; the photo at the models' input size. Returns the manifest (also written as
    ``stimuli.csv``, with ``study.json``) and prints what was written."""
    unknown = set(methods) - set(study.STUDY_METHODS)
    if unknown:
        raise ValueError(
            f"unknown study method(s) {sorted(unknown)}; known: {', '.join(study.STUDY_METHODS)}"
        )
    if accurate.spec.input_size != other.spec.input_size:
        raise ValueError(
            f"the two models take different input sizes ({accurate.spec.input_size} px for "
            f"{accurate.name}, {other.spec.input_size} px for {other.name})"
        )
    size = accurate.spec.input_size
    study_dir = Path(study_dir)
    (study_dir / "images").mkdir(parents=True, exist_ok=True)
    chosen = both_correct({"accurate": accurate, "other": other}, records, n_images, seed)
    rng = random.Random(seed)
    explainers = {
        m.name: {name: explainer(m) for name, explainer in STIMULUS_EXPLAINERS.items()}
        for m in (accurate, other)
    }
    rows = []
    for record in tqdm(chosen, desc="stimuli", disable=not progress, unit="image"):
        image = data.load_rgb(record.path)
        original = f"{record.path.stem}.png"
        image.resize((size, size), Image.BILINEAR).save(study_dir / "images" / original)
        for method in methods:
            stimulus = f"s{len(rows) + 1:03d}"
            pictures = {}
            for model in (accurate, other):
                pixels = explainers[model.name][method].attribute_pixels(
                    model.preprocess([image]), record.label
                )
                pictures[model.name] = gradient_image(pixels[0, 0].detach().cpu().numpy())
            accurate_side = rng.choice(["left", "right"])
            left, right = (accurate, other) if accurate_side == "left" else (other, accurate)
            for side, model in (("left", left), ("right", right)):
                Image.fromarray(pictures[model.name]).save(study_dir / "images" / f"{stimulus}_{side}.png")
            rows.append(
                {
                    "stimulus": stimulus,
                    "image": record.name,
                    "class_name": record.class_name,
                    "method": method,
                    "left_model": left.name,
                    "right_model": right.name,
                    "accurate_side": accurate_side,
                    "original_file": original,
                    "left_file": f"{stimulus}_left.png",
                    "right_file": f"{stimulus}_right.png",
                }
            )
    manifest = pd.DataFrame(rows, columns=study.MANIFEST_COLUMNS)
    write_table(manifest, study_dir / study.MANIFEST)
    info = {
        "question": study.QUESTION,
        "ratings": {str(k): v for k, v in study.RATING_LABELS.items()},
        "accurate_model": accurate.name,
        "other_model": other.name,
        "methods": list(methods),
        "seed": seed,
    }
    write_text(json.dumps(info, indent=2), study_dir / study.STUDY_FILE)
    print(
        f"{len(manifest)} stimuli ({manifest['image'].nunique()} images both models classify correctly x "
        f"{len(methods)} methods) written to the study folder {_shown(study_dir)}"
    )
    return manifest


def _shown(folder: Path) -> str:
    """``folder`` relative to the repository when inside it (as a reader would type it)."""
    resolved = folder.resolve()
    return (
        resolved.relative_to(data.REPO_ROOT).as_posix()
        if resolved.is_relative_to(data.REPO_ROOT)
        else str(folder)
    )


def stimuli_per_side(manifest: pd.DataFrame) -> pd.DataFrame:
    """How many stimuli show the more accurate model on each side, per method."""
    return manifest.groupby(["method", "accurate_side"]).size().rename("stimuli").reset_index()


# --------------------------------------------------------------------------------------------
# The design: a pair that differs in accuracy, not in texture; how many raters it needs
# --------------------------------------------------------------------------------------------

#: How far apart the two models' explanations may be in texture (high-frequency energy,
#: :func:`gradcam_core.metrics.high_frequency_energy`) for raters not to tell them apart by it:
#: the larger model's mean within 20 % of the smaller's.
TEXTURE_TOLERANCE = 0.20


def documented_gap() -> float:
    """The documented ImageNet top-1 gap in points between the paper's trust-study pair, VGG-16
    and AlexNet (``data/reference/model_accuracy.yaml``), the gap the pruned stand-in aims at."""
    documented = load_reference("models")
    return documented["vgg16"]["top1"] - documented["alexnet"]["top1"]


def pruning_sweep(
    records, fractions=models.PRUNING_GRID, batch_size: int = 64, progress: bool = True
) -> pd.DataFrame:
    """Top-1 accuracy on ``records`` of SqueezeNet 1.1 and of its copies magnitude-pruned at
    each of ``fractions`` (:func:`gradcam_core.models.prune_smallest_weights`): columns
    ``fraction`` (0 for the unpruned model), ``images``, ``correct``, ``top1`` in % with its
    Wilson interval (``low``, ``high``), and ``gap``, the points below the unpruned model. The
    images are decoded once (CPU)."""
    model = models.load_model("squeezenet1_1", device="cpu")
    trained = {name: value.clone() for name, value in model.module.state_dict().items()}
    labels = torch.tensor([r.label for r in records])
    inputs = [
        model.preprocess([data.load_rgb(r.path) for r in records[start : start + batch_size]])
        for start in tqdm(
            range(0, len(records), batch_size), desc="decode", disable=not progress, unit="batch"
        )
    ]
    rows = []
    for fraction in tqdm((0.0, *fractions), desc="pruning sweep", disable=not progress, unit="model"):
        model.module.load_state_dict(trained)
        models.prune_smallest_weights(model.module, fraction)
        with torch.no_grad():
            predicted = torch.cat([model(batch).argmax(1) for batch in inputs])
        correct = int((predicted == labels).sum())
        low, high = statistics.proportion_ci(correct, len(records))
        rows.append(
            {
                "fraction": fraction,
                "images": len(records),
                "correct": correct,
                "top1": 100 * correct / len(records),
                "low": 100 * low,
                "high": 100 * high,
            }
        )
    model.module.load_state_dict(trained)
    sweep = pd.DataFrame(rows)
    return sweep.assign(gap=sweep["top1"].iloc[0] - sweep["top1"])


def chosen_fraction(sweep: pd.DataFrame, target_gap: float) -> float:
    """The pruned fraction of ``sweep`` (:func:`pruning_sweep`) whose gap is closest to
    ``target_gap`` (the first of equals), the rule behind :data:`gradcam_core.models.PRUNED_FRACTION`."""
    pruned = sweep[sweep["fraction"] > 0]
    return float(pruned.loc[(pruned["gap"] - target_gap).abs().idxmin(), "fraction"])


def stimulus_textures(study_dirs: dict[str, str | Path]) -> pd.DataFrame:
    """The texture of every explanation picture raters see: per study folder (``{pair label:
    folder}``), stimulus and side, the method, the model behind the picture and its
    high-frequency energy (:func:`gradcam_core.metrics.high_frequency_energy` of the PNG)."""
    rows = []
    for pair, folder in study_dirs.items():
        _, manifest = study.load_study(folder)
        for stimulus in manifest.to_dict("records"):
            for side in ("left", "right"):
                picture = np.asarray(
                    Image.open(Path(folder) / "images" / stimulus[f"{side}_file"]).convert("RGB")
                )
                rows.append(
                    {
                        "pair": pair,
                        "stimulus": stimulus["stimulus"],
                        "method": stimulus["method"],
                        "model": stimulus[f"{side}_model"],
                        "high_frequency_energy": metrics.high_frequency_energy(picture / 255.0),
                    }
                )
    return pd.DataFrame(rows)


def texture_match(textures: pd.DataFrame, tolerance: float = TEXTURE_TOLERANCE) -> pd.DataFrame:
    """Per pair and method of :func:`stimulus_textures`: each model's mean high-frequency energy
    over its pictures, the ratio of the larger mean to the smaller, and ``matched`` when the
    ratio is at most ``1 + tolerance`` (raters cannot tell the models apart by texture)."""
    rows = []
    for (pair, method), group in textures.groupby(["pair", "method"], sort=False):
        means = group.groupby("model", sort=False)["high_frequency_energy"].mean()
        if len(means) != 2:
            raise ValueError(f"{pair}, {method}: expected pictures of two models, got {list(means.index)}")
        (model_a, energy_a), (model_b, energy_b) = means.items()
        ratio = max(energy_a, energy_b) / min(energy_a, energy_b) if min(energy_a, energy_b) > 0 else np.inf
        rows.append(
            {
                "pair": pair,
                "method": method,
                "model A": model_a,
                "energy A": energy_a,
                "model B": model_b,
                "energy B": energy_b,
                "ratio": ratio,
                "matched": bool(ratio <= 1 + tolerance),
            }
        )
    return pd.DataFrame(rows)


def same_image_stimuli(study_dirs, method: str) -> list[pd.DataFrame]:
    """For each study folder of ``study_dirs``, its manifest row of ``method`` for the first image
    that every folder holds (each folder's first image of ``method`` when they share none): the
    same photo explained by every pair, for a figure (:func:`gradcam_core.figures.plot_stimuli`)."""
    manifests = [study.load_study(folder)[1] for folder in study_dirs]
    manifests = [m[m["method"] == method] for m in manifests]
    shared = set.intersection(*(set(m["image"]) for m in manifests))
    first = next((image for image in manifests[0]["image"] if image in shared), None)
    return [m[m["image"] == first] if first is not None else m.head(1) for m in manifests]


def pair_text(sweep: pd.DataFrame, chosen: float, registered: float, target_gap: float) -> str:
    """The sentence that states the pair's accuracies and gap (:func:`pruning_sweep`), and
    whether the registry's pruned fraction is the sweep's choice (:func:`chosen_fraction`)."""
    trained = sweep.iloc[0]
    pruned = sweep[sweep["fraction"] == registered].iloc[0]
    verdict = (
        "the same fraction this run's sweep chooses"
        if chosen == registered
        else f"**not** the fraction this run's sweep chooses ({100 * chosen:.1f} %): update the registry"
    )
    return (
        f"On the {int(trained['images'])} embedded images, SqueezeNet 1.1 classifies "
        f"{trained['top1']:.1f} % right (top-1), and its copy with {100 * registered:.1f} % of each layer's "
        f"weights set to 0 classifies {pruned['top1']:.1f} % right: a gap of {pruned['gap']:.1f} points, "
        f"against the documented {target_gap:.1f} between VGG-16 and AlexNet. The pruned fraction, "
        f"{100 * registered:.1f} %, is {verdict}."
    )


def power_text(power: pd.DataFrame, sd: float = 0.75) -> str:
    """The power analysis (:func:`power_analysis`) in two sentences, at the spread ``sd``,
    against the number of workers the paper had (``data/reference/paper_results.yaml``)."""
    workers = load_reference("paper")["user_study"]["trust_workers"]
    at = power[power["assumed sd"] == sd].set_index("effect")
    contrast, trust = at.loc[CONTRAST_EFFECT], at.loc["guided-backprop trust (against 0)"]
    rows = power[power["effect"] == CONTRAST_EFFECT]
    value = "paper's value"
    enough = [f"{v:g}" for v in rows.loc[rows["raters needed"] <= workers, "assumed sd"]]
    return (
        f"With per-rater values spread by a standard deviation of {sd:g} scale points, "
        f"{int(trust['raters needed'])} raters detect the paper's smaller mean trust "
        f"({trust[value]:.2f}) at 80 % power, and {int(contrast['raters needed'])} raters its contrast "
        f"between the methods ({contrast[value]:.2f}). The paper's {workers} workers suffice for "
        f"that contrast at the assumed spreads of {', '.join(enough) if enough else 'none'} "
        f"(of {', '.join(f'{v:g}' for v in rows['assumed sd'])})."
    )


#: The power analysis' name of the paper's contrast between the methods.
CONTRAST_EFFECT = "guided-grad-cam minus guided-backprop"

#: The spreads of per-rater mean ratings the power analysis assumes (the paper reports none).
POWER_SDS = (0.5, 0.75, 1.0)


def power_analysis(sds=POWER_SDS, power: float = 0.8, alpha: float = 0.05) -> pd.DataFrame:
    """How many raters detect the paper's effects (Sec. 5.2) at ``power``: the mean trust of
    each method (the paper's 1.00 and 1.27, against 0) and the contrast Guided Grad-CAM minus
    Guided Backprop (0.27, paired within raters), for each assumed standard deviation of the
    per-rater values in ``sds``, by the two-sided Wilcoxon signed-rank test on per-rater means
    that :func:`per_rater_test` runs (:func:`gradcam_core.statistics.raters_needed`)."""
    paper = {row["method"]: row["value"] for row in load_reference("paper")["user_study"]["trust_score"]}
    effects = {f"{method} trust (against 0)": value for method, value in paper.items()}
    effects[CONTRAST_EFFECT] = paper["guided-grad-cam"] - paper["guided-backprop"]
    rows = [
        {
            "effect": name,
            "paper's value": value,
            "assumed sd": sd,
            "raters needed": statistics.raters_needed(value, sd, power=power, alpha=alpha),
        }
        for name, value in effects.items()
        for sd in sds
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Analysis of the ratings
# --------------------------------------------------------------------------------------------


def signed_ratings(responses: pd.DataFrame, accurate_model: str) -> pd.DataFrame:
    """Adds ``signed``: the rating with its sign mapped so that positive means the more
    accurate model (``accurate_model``) is trusted more (+ is "right" on the survey's scale)."""
    out = responses.copy()
    on_right = out["right_model"] == accurate_model
    on_left = out["left_model"] == accurate_model
    if not (on_right | on_left).all():
        raise study.StudyError(f"some responses compare models without {accurate_model!r}")
    out["signed"] = np.where(on_right, out["rating"], -out["rating"]).astype(int)
    return out


def load_responses(responses_csv, accurate_model: str) -> pd.DataFrame | None:
    """The signed ratings of a responses CSV (``python -m gradcam_core.study export``), or
    ``None`` without one; prints how many real ratings there are. No rating is ever invented."""
    if responses_csv is None:
        print(
            "No responses file was given: this report holds 0 real ratings, so there is nothing to "
            "analyse yet. The study above is ready to run (see 'Running the study')."
        )
        return None
    responses = signed_ratings(study.read_responses(responses_csv), accurate_model)
    print(
        f"{len(responses)} real ratings from {responses['rater'].nunique()} raters on "
        f"{responses['stimulus'].nunique()} stimuli, read from {Path(responses_csv).name}"
    )
    return responses


def rater_agreement(signed: pd.DataFrame) -> float:
    """Krippendorff's alpha (ordinal) of the signed ratings over raters x stimuli, missing
    ratings allowed (:func:`gradcam_core.metrics.inter_rater_agreement`)."""
    matrix = signed.pivot_table(index="rater", columns="stimulus", values="signed", aggfunc="first")
    return metrics.inter_rater_agreement(matrix.to_numpy(np.float64), study.RATINGS)


#: The paired comparison :func:`per_rater_test` reports by default: Guided Grad-CAM against Guided
#: Backpropagation, the paper's contrast (Sec. 5.2: mean trust 1.27 against 1.00).
TRUST_DIFFERENCES = (("guided-grad-cam", "guided-backprop"),)

#: The columns of :func:`per_rater_test`.
PER_RATER_COLUMNS = [
    "method",
    "raters",
    "ratings",
    "mean of rater means",
    "95% CI low",
    "95% CI high",
    "Wilcoxon p",
]


def rater_means(signed: pd.DataFrame) -> pd.DataFrame:
    """The mean signed rating of every rater per method: a raters x methods table (NaN where a
    rater rated no stimulus of a method)."""
    means = signed.pivot_table(index="rater", columns="method", values="signed", aggfunc="mean")
    # exact ties and zeros matter to the signed-rank test: drop float noise such as 1e-17
    return means.round(12)


def per_rater_test(
    signed: pd.DataFrame,
    seed: int = 0,
    n_resamples: int = 2000,
    differences: Sequence[tuple[str, str]] = TRUST_DIFFERENCES,
) -> pd.DataFrame:
    """The trust test of paper Sec. 5.2 with the rater as the unit of analysis.

    Every rater rates every stimulus, so a rater's ratings are not independent of each other
    (one lenient or one enthusiastic rater moves all of them); testing the ratings as if they
    were independent counts one person many times (pseudo-replication) and gives p-values and
    intervals that are far too small. Here each rater counts once. Per method:

    - ``raters`` and ``ratings``: how many raters rated the method, and their ratings in all;
    - ``mean of rater means``: the mean over raters of each rater's mean signed rating
      (positive: the more accurate model is trusted more);
    - ``95% CI low`` / ``high``: the 95 % percentile bootstrap interval of that mean, resampling
      *raters* with replacement (a cluster bootstrap: :func:`scipy.stats.bootstrap` on the
      per-rater means through :func:`gradcam_core.metrics.bootstrap_ci`, ``n_resamples``
      resamples, fixed ``seed``); it collapses to the mean when every rater has the same mean,
      and is NaN with fewer than 2 raters;
    - ``Wilcoxon p``: the two-sided Wilcoxon signed-rank test of the per-rater means against 0
      (:func:`scipy.stats.wilcoxon`, default ``method="auto"``: exact without ties for up to 50
      raters, otherwise permutations up to 13 raters, then the normal approximation). Raters
      whose mean is exactly 0 are dropped, as Wilcoxon's original procedure does
      (``zero_method="wilcox"``); NaN when no rater has a non-zero mean.

    Then, for each ``(a, b)`` of ``differences`` with both methods present (by default Guided
    Grad-CAM against Guided Backpropagation, the paper's contrast), a row ``"a minus b"``: the
    same statistics of the paired per-rater difference ``mean_a - mean_b`` over the raters who
    rated both methods (``ratings``: theirs, of both methods).

    Values are rounded for display: means and interval ends to 3 decimals, p-values to 3
    significant digits (so a small p does not show as 0)."""
    from scipy import stats

    means = rater_means(signed)
    counts = signed.groupby(["rater", "method"]).size().unstack("method", fill_value=0)

    def row(name: str, values: pd.Series, ratings: int) -> dict:
        values = values.dropna().to_numpy(np.float64)
        if len(values) >= 2:
            low, high = metrics.bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
        else:
            low = high = float("nan")
        nonzero = values[values != 0]
        p_value = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) else float("nan")
        return {
            "method": name,
            "raters": len(values),
            "ratings": int(ratings),
            "mean of rater means": round(float(values.mean()), 3) if len(values) else float("nan"),
            "95% CI low": round(low, 3),
            "95% CI high": round(high, 3),
            "Wilcoxon p": float(f"{p_value:.3g}"),
        }

    rows = [row(m, means[m], counts[m].sum()) for m in sorted(means.columns)]
    for a, b in differences:
        if a in means.columns and b in means.columns:
            both = means[[a, b]].dropna()
            rows.append(row(f"{a} minus {b}", both[a] - both[b], counts.loc[both.index, [a, b]].sum().sum()))
    return pd.DataFrame(rows, columns=PER_RATER_COLUMNS)
