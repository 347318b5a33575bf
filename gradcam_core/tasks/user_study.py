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
from PIL import Image
from tqdm import tqdm

from .. import data, metrics, study
from ..maps import gradient_image
from ..methods import GuidedBackprop, GuidedGradCAM
from ..results import write_table, write_text
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
