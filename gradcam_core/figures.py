"""Figures for the page, one function per figure, all drawn in one seaborn theme (:data:`THEME`,
applied while each figure is drawn, so importing this module changes no global setting).

Inputs are summary tables (:mod:`gradcam_core.tables`) or the figure data that each task
returns as a dataclass (``examples`` / ``cases`` of :mod:`gradcam_core.tasks`); every function
returns the matplotlib figure. Maps are drawn normalised to [0, 1] with the ``jet`` colormap,
ground-truth boxes in green and boxes extracted from maps in red.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import patches
from PIL import Image

#: The one theme of every figure of the report: seaborn's context, style and colour palette.
THEME = {"context": "notebook", "style": "whitegrid", "palette": "deep"}

MAP_COLORMAP = "jet"
GROUND_TRUTH_COLOR = "lime"
EXTRACTED_BOX_COLOR = "red"


def _themed(plot):
    """Draw ``plot``'s figure in :data:`THEME`."""

    @functools.wraps(plot)
    def themed(*args, **kwargs):
        with (
            sns.plotting_context(THEME["context"]),
            sns.axes_style(THEME["style"]),
            sns.color_palette(THEME["palette"]),
        ):
            return plot(*args, **kwargs)

    return themed


def _draw_boxes(ax, boxes, color: str) -> None:
    """Outline ``x0, y0, x1, y1`` boxes on ``ax``."""
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.5))


def _finished(fig, title: str | None = None, title_y: float = 1.01):
    """``fig`` laid out tightly, with ``title`` above it when given."""
    fig.tight_layout()
    if title:
        fig.suptitle(title, y=title_y)
    return fig


def _image_axes(nrows: int, ncols: int, width: float, height: float):
    """A grid of image axes ``(nrows, ncols)``, always two-dimensional."""
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)


# --------------------------------------------------------------------------------------------
# Task 1
# --------------------------------------------------------------------------------------------


@_themed
def plot_threshold_sweep(sweep: pd.DataFrame, chosen: float):
    """Localisation error against the binarisation threshold, top-1 and top-5 side by side,
    the chosen threshold dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, column in zip(axes, ("loc top-1 err", "loc top-5 err")):
        sns.lineplot(data=sweep, x="threshold", y=column, hue="model", style="method", marker="o", ax=ax)
        ax.axvline(chosen, color="grey", ls="--", lw=1)
        ax.set_xlabel("map threshold (fraction of the map's maximum)")
        ax.set_ylabel(f"{column} (%)")
        ax.legend(fontsize=7)
    return _finished(fig)


@_themed
def plot_boxes_on_maps(examples, title: str | None = None):
    """A grid from a task's ``LocalizationExamples``: each column an image with its
    ground-truth and extracted boxes, above its normalised map with the same boxes."""
    n = len(examples.images)
    fig, axes = _image_axes(2, n, 2.6, 2.7)
    for i in range(n):
        for row, background in ((0, examples.images[i]), (1, examples.heatmaps[i])):
            ax = axes[row, i]
            ax.imshow(background, cmap=None if row == 0 else MAP_COLORMAP, vmin=0, vmax=1 if row else None)
            _draw_boxes(ax, examples.gt_boxes[i], GROUND_TRUTH_COLOR)
            if examples.pred_boxes[i] is not None:
                _draw_boxes(ax, [examples.pred_boxes[i]], EXTRACTED_BOX_COLOR)
            ax.set_axis_off()
        axes[0, i].set_title(examples.titles[i], fontsize=8)
    return _finished(fig, title, 1.02)


# --------------------------------------------------------------------------------------------
# Task 2
# --------------------------------------------------------------------------------------------


@_themed
def plot_pointing_curve(curve: pd.DataFrame):
    """Pointing accuracy over the top-5 predictions against recall of the ground-truth class."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for model, group in curve.groupby("model", sort=False):
        ax.plot(group["recall"], group["accuracy"], marker=".", label=model)
    ax.set_xlabel("recall of the ground-truth class (%)")
    ax.set_ylabel("pointing accuracy over top-5 predictions (%)")
    ax.legend()
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 3
# --------------------------------------------------------------------------------------------


@_themed
def plot_correlation_distribution(table: pd.DataFrame):
    """Per-image Spearman correlations with the occlusion map, per method and model; one panel
    per ranking resolution when the table has several."""
    resolutions = list(pd.unique(table["resolution"].astype(str))) if "resolution" in table else [None]
    fig, axes = plt.subplots(
        1, len(resolutions), figsize=(5 * len(resolutions), 3.8), sharey=True, squeeze=False
    )
    for ax, resolution in zip(axes[0], resolutions):
        part = table if resolution is None else table[table["resolution"].astype(str) == resolution]
        sns.boxplot(data=part, x="method", y="spearman", hue="model", ax=ax, fliersize=2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlabel("")
        if resolution is not None:
            ax.set_title(
                "full resolution" if resolution == "full" else f"pooled to {resolution} x {resolution}"
            )
        if ax is not axes[0, 0] and ax.get_legend():
            ax.get_legend().remove()
    axes[0, 0].set_ylabel("Spearman correlation with the occlusion map")
    return _finished(fig)


@_themed
def plot_map_grid(examples, title: str | None = None):
    """Rows: images; columns: the image, then each named map (normalised) of a task's
    ``OcclusionExamples``."""
    names = list(examples.maps)
    fig, axes = _image_axes(len(examples.images), 1 + len(names), 2.3, 2.3)
    for i, image in enumerate(examples.images):
        axes[i, 0].imshow(image)
        axes[i, 0].set_title(examples.titles[i], fontsize=8)
        for j, name in enumerate(names, start=1):
            axes[i, j].imshow(examples.maps[name][i], cmap=MAP_COLORMAP, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for ax in axes[i]:
            ax.set_axis_off()
    return _finished(fig, title, 1.01)


# --------------------------------------------------------------------------------------------
# Task 4
# --------------------------------------------------------------------------------------------


@_themed
def plot_stimuli(study_dir: str | Path, manifest: pd.DataFrame, count: int = 4):
    """The first ``count`` stimuli as raters see them: the photo, then the left and the right
    explanation, each titled with the model behind it (which raters are not told)."""
    rows = manifest.head(count).to_dict("records")
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for ax_row, r in zip(axes, rows):
        panels = (
            (r["original_file"], f"{r['stimulus']}: {r['class_name']}\n({r['method']})"),
            (r["left_file"], f"left: {r['left_model']}"),
            (r["right_file"], f"right: {r['right_model']}"),
        )
        for ax, (file, title) in zip(ax_row, panels):
            ax.imshow(Image.open(Path(study_dir) / "images" / file))
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 5
# --------------------------------------------------------------------------------------------


@_themed
def plot_xray_maps(examples, method: str, ncols: int = 6):
    """One method's normalised maps over the X-rays of a task's ``XrayExamples``, the
    radiologist box in green."""
    n = len(examples.images)
    fig, axes = _image_axes((n + ncols - 1) // ncols, ncols, 2.3, 2.5)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(examples.images[i])
        ax.imshow(examples.maps[method][i], cmap=MAP_COLORMAP, alpha=0.45, vmin=0, vmax=1)
        _draw_boxes(ax, examples.boxes[i], GROUND_TRUTH_COLOR)
        ax.set_title(examples.titles[i], fontsize=7)
    fig.suptitle(method, y=1.0)
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 6
# --------------------------------------------------------------------------------------------


@_themed
def plot_one_pixel_cases(cases, title: str | None = None):
    """Each row a task's ``OnePixelCase``: the image with the attacked pixel circled, the true
    class's map before and after. ``None`` when there is no case."""
    if not cases:
        return None
    fig, axes = plt.subplots(len(cases), 3, figsize=(7, 2.4 * len(cases)), squeeze=False)
    for row, case in zip(axes, cases):
        x, y = case.xy
        panels = (
            (case.image, None, case.title),
            (case.before, MAP_COLORMAP, "map before"),
            (case.after, MAP_COLORMAP, "map after"),
        )
        for ax, (background, cmap, panel_title) in zip(row, panels):
            ax.imshow(background, cmap=cmap)
            ax.scatter([x], [y], s=120, facecolors="none", edgecolors="white", linewidths=1.5)
            ax.set_title(panel_title, fontsize=8)
            ax.set_axis_off()
    return _finished(fig, title, 1.01)


@_themed
def plot_fgsm(summary: pd.DataFrame):
    """FGSM against epsilon: success rate, the maps' rank correlations and the pointing hit
    rate, one panel each, a line per model."""
    columns = [
        "success (%)",
        "rank corr, true class",
        "rank corr, adversarial class",
        "pointing hit, true class (%)",
    ]
    fig, axes = plt.subplots(1, len(columns), figsize=(14, 3.2))
    for ax, column in zip(axes, columns):
        for model, group in summary.groupby("model", sort=False):
            ax.plot(group["epsilon"], group[column], marker="o", label=model)
        ax.set_xlabel("epsilon (pixel scale 0-1)")
        ax.set_title(column, fontsize=9)
    axes[0].legend(fontsize=7)
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 7
# --------------------------------------------------------------------------------------------


@_themed
def plot_fidelity_examples(examples, class_names, threshold: float = 0.10, title: str | None = None):
    """Rows: images of a task's ``FidelityExamples``; columns: the image, then per method the
    0..1 saliency of the top-1 and the top-2 class, the pixels above ``threshold`` outlined."""
    methods = list(examples.maps)
    n = len(examples.images)
    fig, axes = _image_axes(n, 1 + 2 * len(methods), 1.7, 1.8)
    gray = np.ndim(examples.images) == 3
    for i in range(n):
        axes[i, 0].imshow(examples.images[i], cmap="gray" if gray else None)
        top1, top2 = (class_names[c] for c in examples.classes[i])
        axes[i, 0].set_title(f"top-1 {top1}", fontsize=7)
        for j, method in enumerate(methods):
            for k, name in enumerate((top1, top2)):
                ax = axes[i, 1 + 2 * j + k]
                saliency = examples.maps[method][i, k]
                ax.imshow(saliency, cmap=MAP_COLORMAP, vmin=0, vmax=1)
                ax.contour(saliency > threshold, levels=[0.5], colors="white", linewidths=0.6)
                ax.set_title(f"{method}\n{'top-1' if k == 0 else 'top-2'}" if i == 0 else name, fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    return _finished(fig, title, 1.01)
