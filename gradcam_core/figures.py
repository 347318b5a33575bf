"""Figures for the page, one function per figure, all drawn in one seaborn theme (:data:`THEME`,
applied while each figure is drawn, so importing this module changes no global setting;
:func:`set_theme` applies it globally for figures drawn elsewhere).

Inputs are summary tables (:mod:`gradcam_core.tables`) or the figure data that each task
returns as a dataclass (``examples`` / ``cases`` of :mod:`gradcam_core.tasks`); every function
returns the matplotlib figure.

The figures are made for a book page whose text column is about 800 px wide: they are at most
:data:`MAX_WIDTH` inches wide and every text is at least 10 pt, so that once scaled to the
column no text is smaller than about 10 px. Captions come from the book; titles inside a figure
only name what differs between panels (model, method, image).

Maps: every figure that draws maps has a colorbar saying what the colour means. Non-negative
maps (scaled to [0, 1]) use :data:`MAP_COLORMAP` (``jet``, the paper's); maps holding negative
values (the signed attributions of Integrated Gradients and GradientSHAP, :data:`SIGNED_METHODS`,
when a task passes them with their sign) are divided by their largest absolute value and drawn
on :data:`DIVERGING_COLORMAP` centred at 0 (red: evidence for the class, blue: against).
Ground-truth boxes are green, boxes extracted from maps red.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colors, patches
from matplotlib.cm import ScalarMappable
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextToPath
from PIL import Image

#: The one theme of every figure of the report: seaborn's context, style and colour palette,
#: a font scale and the rc settings that fix the text sizes (10 pt at the least).
THEME = {
    "context": "notebook",
    "style": "whitegrid",
    "palette": "deep",
    "font_scale": 1.0,
    "rc": {
        "font.size": 11,
        "axes.titlesize": 11,
        "axes.labelsize": 11,
        "xtick.labelsize": 10,
        "ytick.labelsize": 10,
        "legend.fontsize": 10,
        "legend.title_fontsize": 11,
        "figure.titlesize": 13,
    },
}

#: The widest figure (inches): at 100 dpi and scaled to an 800 px column, 10 pt text stays
#: above 10 px.
MAX_WIDTH = 9.6

#: Colormap of non-negative maps scaled to [0, 1] (the paper's).
MAP_COLORMAP = "jet"
#: Colormap of signed maps, centred at 0.
DIVERGING_COLORMAP = "RdBu_r"
#: Methods whose attributions are signed (positive: evidence for the class, negative: against).
SIGNED_METHODS = frozenset({"integrated-gradients", "gradient-shap"})
GROUND_TRUTH_COLOR = "lime"
EXTRACTED_BOX_COLOR = "red"
#: Colour of the paper's value in :func:`plot_forest`.
PAPER_COLOR = "#c0392b"


def set_theme() -> None:
    """Apply :data:`THEME` globally (``seaborn.set_theme``), for figures drawn outside this
    module (e.g. in a notebook) to look like the report's."""
    sns.set_theme(
        context=THEME["context"],
        style=THEME["style"],
        palette=THEME["palette"],
        font_scale=THEME["font_scale"],
        rc=THEME["rc"],
    )


def _themed(plot):
    """Draw ``plot``'s figure in :data:`THEME`."""

    @functools.wraps(plot)
    def themed(*args, **kwargs):
        with (
            sns.plotting_context(THEME["context"], font_scale=THEME["font_scale"], rc=THEME["rc"]),
            sns.axes_style(THEME["style"]),
            sns.color_palette(THEME["palette"]),
            mpl.rc_context(THEME["rc"]),
        ):
            return plot(*args, **kwargs)

    return themed


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _draw_boxes(ax, boxes, color: str) -> None:
    """Outline ``x0, y0, x1, y1`` boxes on ``ax``."""
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.5))


def _finished(fig, title: str | None = None):
    """``fig`` with ``title`` above it when given (matplotlib's constrained layout places it
    when the figure is drawn)."""
    if title:
        fig.suptitle(title)
    return fig


def _image_axes(nrows: int, ncols: int, width: float, height: float, extra: float = 0.0):
    """A grid of image axes ``(nrows, ncols)``, always two-dimensional, panels of ``width`` x
    ``height`` inches shrunk together so that the figure is at most :data:`MAX_WIDTH` wide, plus
    ``extra`` inches of height (for column titles, colorbars and a title)."""
    shrink = min(1.0, MAX_WIDTH / (width * ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols * shrink, height * nrows * shrink + extra),
        squeeze=False,
        layout="constrained",
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    return fig, axes


def _text_width_pt(text: str, size: float) -> float:
    """The width (points) of one line of ``text`` at ``size`` points in the current font."""
    width, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(size=size), ismath=False)
    return width


def _wrap(text: str, width_pt: float, size: float) -> str:
    """``text`` wrapped at spaces and hyphens (its own line breaks kept) so that every line fits
    in ``width_pt`` points at ``size`` points, where a word allows."""
    lines = []
    for line in str(text).split("\n"):
        for chars in range(len(line), 0, -1):
            wrapped = textwrap.wrap(line, chars, break_long_words=False) or [""]
            if all(_text_width_pt(part, size) <= width_pt for part in wrapped) or chars == 1:
                break
        lines.extend(wrapped)
    return "\n".join(lines)


def _font_size(key: str, given: float | None = None) -> float:
    size = given or mpl.rcParams[key]
    return size if isinstance(size, int | float) else 11.0


def _cell_share(ax) -> tuple[float, float]:
    """The fraction of its figure's width and height that ``ax``'s grid cell spans."""
    spec = ax.get_subplotspec()
    if spec is None:
        return 1.0, 1.0
    grid = spec.get_gridspec()
    return len(spec.colspan) / grid.ncols, len(spec.rowspan) / grid.nrows


def _row_label(ax, text: str) -> None:
    """``text`` to the left of an image panel (its y label, wrapped to the panel's height);
    the panel's ticks and frame are hidden."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    height_pt = 0.85 * _cell_share(ax)[1] * ax.figure.get_figheight() * 72
    ax.set_ylabel(_wrap(text, height_pt, _font_size("axes.labelsize")))


def _panel_title(ax, text: str, fontsize: float | None = None) -> None:
    """``text`` as ``ax``'s title, wrapped (at spaces and hyphens) to the panel's width."""
    width_pt = 0.92 * _cell_share(ax)[0] * ax.figure.get_figwidth() * 72
    ax.set_title(_wrap(text, width_pt, _font_size("axes.titlesize", fontsize)), fontsize=fontsize)


@dataclass(frozen=True)
class MapScale:
    """How maps are coloured: the colormap, the norm and the colorbar's label."""

    cmap: str
    norm: colors.Normalize
    label: str

    @property
    def signed(self) -> bool:
        return self.cmap == DIVERGING_COLORMAP


def _has_negative(maps) -> bool:
    return any(np.nanmin(np.asarray(m, dtype=float)) < 0 for m in maps)


def _over_max_abs(m) -> np.ndarray:
    """``m`` divided by its largest absolute value (all zeros stay zeros); figures take plain
    arrays and import nothing of the package (test_imports), so this is the numpy twin of
    :func:`gradcam_core.maps.for_display`'s signed case."""
    m = np.asarray(m, dtype=float)
    peak = np.nanmax(np.abs(m)) if m.size else 0.0
    return m / peak if peak > 0 else m


def _to_unit(m) -> np.ndarray:
    """A non-negative map on [0, 1]: as it is when already there, else divided by its maximum."""
    m = np.asarray(m, dtype=float)
    peak = np.nanmax(m) if m.size else 0.0
    return m / peak if peak > 1 else m


def _prepared(maps, unsigned_label: str, signed_label: str) -> tuple[list[np.ndarray], MapScale]:
    """``maps`` ready to draw and their scale: signed maps (any value below 0) divided by their
    largest absolute value on the diverging colormap centred at 0, others on [0, 1]."""
    if _has_negative(maps):
        scale = MapScale(DIVERGING_COLORMAP, colors.TwoSlopeNorm(0.0, -1.0, 1.0), signed_label)
        return [_over_max_abs(m) for m in maps], scale
    return [_to_unit(m) for m in maps], MapScale(MAP_COLORMAP, colors.Normalize(0.0, 1.0), unsigned_label)


def _signed_label(name: str) -> str:
    return f"{name}: attribution / max |attribution| (red: for the class, blue: against)"


def _colorbar(fig, axes, scale: MapScale, shrink: float = 0.6):
    """One horizontal colorbar below ``axes`` (part of a grid), ``shrink`` times their width,
    about 0.15 inch thick, with ``scale``'s label wrapped to its length."""
    axes = np.atleast_2d(axes)
    share = axes.shape[1] / axes[0, 0].get_subplotspec().get_gridspec().ncols
    length_in = fig.get_figwidth() * share * shrink
    mappable = ScalarMappable(norm=scale.norm, cmap=scale.cmap)
    bar = fig.colorbar(
        mappable, ax=list(axes.ravel()), location="bottom", shrink=shrink, aspect=length_in / 0.15, pad=0.02
    )
    bar.set_label(_wrap(scale.label, length_in * 72, _font_size("axes.labelsize")))
    if scale.signed:
        bar.set_ticks([-1, -0.5, 0, 0.5, 1])
    return bar


def _colorbars(fig, axes, groups: list[tuple[MapScale, list[int]]]) -> None:
    """Colorbars for the columns of the image grid ``axes``: one per ``(scale, columns)`` of
    ``groups``, below its own columns when there are several groups of adjacent columns,
    else one below the whole grid, stacked in the order given."""
    groups = [(scale, cols) for scale, cols in groups if cols]
    contiguous = all(cols == list(range(cols[0], cols[-1] + 1)) for _, cols in groups)
    if len(groups) > 1 and contiguous:
        for scale, cols in groups:
            _colorbar(fig, axes[:, cols[0] : cols[-1] + 1], scale, shrink=0.9)
        return
    for scale, _ in reversed(groups):  # the last one made sits closest to the grid
        _colorbar(fig, axes, scale)


def _show_map(ax, heat, scale: MapScale, **kwargs):
    return ax.imshow(heat, cmap=scale.cmap, norm=scale.norm, **kwargs)


# --------------------------------------------------------------------------------------------
# Task 1
# --------------------------------------------------------------------------------------------


@_themed
def plot_threshold_sweep(sweep: pd.DataFrame, chosen: float):
    """Localisation error (%) against the threshold that binarises the map (a fraction of its
    maximum): top-1 error (left) and top-5 error (right) on the same y scale, a line per model
    (colour) and method (line style); the chosen threshold dashed. One legend, outside the
    panels on the right."""
    fig, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.8), sharey=True, layout="constrained")
    for ax, column in zip(axes, ("loc top-1 err", "loc top-5 err")):
        sns.lineplot(data=sweep, x="threshold", y=column, hue="model", style="method", marker="o", ax=ax)
        ax.axvline(chosen, color="grey", ls="--", lw=1)
        ax.set_xlabel("map threshold (fraction of max)")
        ax.set_ylabel(f"{column} (%)")
        ax.yaxis.label.set_visible(True)  # the labels differ: keep the right panel's too
        ax.tick_params(axis="y", labelleft=True)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend():
            ax.get_legend().remove()
    handles.append(Line2D([], [], color="grey", ls="--", lw=1))
    labels.append("chosen threshold")
    fig.legend(handles, labels, loc="outside right upper")
    return _finished(fig)


@_themed
def plot_boxes_on_maps(examples, title: str | None = None):
    """A grid from a task's ``LocalizationExamples``: each column an image (titled with its
    top-1 class and whether it was localised right) with its ground-truth boxes (green) and the
    box extracted from the map (red), above its top-1 Grad-CAM map scaled to [0, 1] with the
    same boxes; one colorbar for all maps. ``title`` (e.g. the model) goes above the grid."""
    n = len(examples.images)
    fig, axes = _image_axes(2, n, 2.2, 2.2, extra=1.0 + 0.35 * bool(title))
    maps, scale = _prepared(
        examples.heatmaps, "Grad-CAM (top-1 class), scaled to [0, 1]", _signed_label("Grad-CAM")
    )
    for i in range(n):
        for row in (0, 1):
            ax = axes[row, i]
            if row == 0:
                ax.imshow(examples.images[i])
            else:
                _show_map(ax, maps[i], scale)
            _draw_boxes(ax, examples.gt_boxes[i], GROUND_TRUTH_COLOR)
            if examples.pred_boxes[i] is not None:
                _draw_boxes(ax, [examples.pred_boxes[i]], EXTRACTED_BOX_COLOR)
            ax.set_axis_off()
        _panel_title(axes[0, i], examples.titles[i])
    _colorbar(fig, axes, scale)
    return _finished(fig, title)


# --------------------------------------------------------------------------------------------
# Task 2
# --------------------------------------------------------------------------------------------


@_themed
def plot_pointing_curve(curve: pd.DataFrame):
    """Pointing accuracy over the top-5 predictions against recall of the ground-truth class,
    a line per model (legend outside, on the right)."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for model, group in curve.groupby("model", sort=False):
        ax.plot(group["recall"], group["accuracy"], marker=".", label=model)
    ax.set_xlabel("recall of the ground-truth class (%)")
    ax.set_ylabel("pointing accuracy,\ntop-5 predictions (%)")
    fig.legend(title="model", loc="outside right upper")
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 3
# --------------------------------------------------------------------------------------------


@_themed
def plot_correlation_distribution(table: pd.DataFrame):
    """Box plots of the per-image Spearman correlations with the occlusion map, per method
    (x) and model (colour; legend outside, on the right); one panel per ranking resolution when
    the table has several."""
    resolutions = list(pd.unique(table["resolution"].astype(str))) if "resolution" in table else [None]
    fig, axes = plt.subplots(
        1,
        len(resolutions),
        figsize=(min(MAX_WIDTH, 2.0 + 3.8 * len(resolutions)), 4.2),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, resolution in zip(axes[0], resolutions):
        part = table if resolution is None else table[table["resolution"].astype(str) == resolution]
        sns.boxplot(data=part, x="method", y="spearman", hue="model", ax=ax, fliersize=2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.tick_params(axis="x", rotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
        ax.set_xlabel("")
        if resolution is not None:
            pooled = f"pooled to {resolution} x {resolution}"
            ax.set_title("full resolution" if resolution == "full" else pooled)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes[0]:
        if ax.get_legend():
            ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, title="model", loc="outside right upper")
    axes[0, 0].set_ylabel("Spearman correlation\nwith the occlusion map")
    return _finished(fig)


@_themed
def plot_map_grid(examples, title: str | None = None):
    """Rows: images of a task's ``OcclusionExamples`` (the class to the left); columns: the
    image, then each named map (occlusion first, the method above the column), scaled to
    [0, 1] per map; one colorbar for all (and a second, diverging one centred at 0, for the
    columns whose maps are signed). ``title`` (e.g. the model) goes above the grid."""
    names = list(examples.maps)
    fig, axes = _image_axes(len(examples.images), 1 + len(names), 2.0, 2.0, extra=0.8 + 0.35 * bool(title))
    prepared = {name: _prepared(examples.maps[name], "", "") for name in names}
    for i, image in enumerate(examples.images):
        axes[i, 0].imshow(image)
        _row_label(axes[i, 0], examples.titles[i])
        for j, name in enumerate(names, start=1):
            maps, scale = prepared[name]
            _show_map(axes[i, j], maps[i], scale)
            axes[i, j].set_axis_off()
    _panel_title(axes[0, 0], "image")
    for j, name in enumerate(names, start=1):
        _panel_title(axes[0, j], name)
    unsigned = [j for j, n in enumerate(names, start=1) if not prepared[n][1].signed]
    signed = [j for j, n in enumerate(names, start=1) if prepared[n][1].signed]
    _colorbars(
        fig,
        axes,
        [
            (
                MapScale(MAP_COLORMAP, colors.Normalize(0.0, 1.0), "map value, scaled to [0, 1] per map"),
                unsigned,
            ),
            (
                MapScale(
                    DIVERGING_COLORMAP,
                    colors.TwoSlopeNorm(0.0, -1.0, 1.0),
                    _signed_label(", ".join(names[j - 1] for j in signed)),
                ),
                signed,
            ),
        ],
    )
    return _finished(fig, title)


# --------------------------------------------------------------------------------------------
# Task 4
# --------------------------------------------------------------------------------------------


@_themed
def plot_stimuli(study_dir: str | Path, manifest: pd.DataFrame, count: int = 4):
    """The first ``count`` stimuli as raters see them: the photo (titled with the stimulus, the
    class and the method), then the left and the right explanation, each titled with the model
    behind it (which raters are not told). The explanations are RGB gradient images (grey: no
    gradient; :func:`gradcam_core.maps.gradient_image`), not a colormap, so there is no
    colorbar."""
    rows = manifest.head(count).to_dict("records")
    fig, axes = _image_axes(len(rows), 3, 2.4, 2.4 + 0.45)
    for ax_row, r in zip(axes, rows):
        panels = (
            (r["original_file"], f"{r['stimulus']}: {r['class_name']}\n({r['method']})"),
            (r["left_file"], f"left: {r['left_model']}"),
            (r["right_file"], f"right: {r['right_model']}"),
        )
        for ax, (file, title) in zip(ax_row, panels):
            ax.imshow(Image.open(Path(study_dir) / "images" / file))
            _panel_title(ax, title)
            ax.set_axis_off()
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 5
# --------------------------------------------------------------------------------------------


@_themed
def plot_xray_maps(examples, method: str, ncols: int = 4):
    """One method's maps over the X-rays of a task's ``XrayExamples`` (each titled with the
    finding and the image), overlaid at half opacity, the radiologist box in green; the method
    above the grid and one colorbar. Maps scaled to [0, 1] are drawn on ``jet``; maps passed
    with their sign (Integrated Gradients, GradientSHAP) are divided by their largest absolute
    value and drawn on a diverging colormap centred at 0. (Task 5 currently passes every map
    min-max scaled to [0, 1], for which 0 is the map's most negative value: the colorbar says
    so for the signed methods.)"""
    n = len(examples.images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = _image_axes(nrows, ncols, 2.4, 2.4 + 0.45, extra=1.3)
    unsigned_label = f"{method}, min-max scaled to [0, 1]"
    if method in SIGNED_METHODS:
        unsigned_label += " (sign not kept: 0 = most negative)"
    maps, scale = _prepared(examples.maps[method], unsigned_label, _signed_label(method))
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(examples.images[i])
        _show_map(ax, maps[i], scale, alpha=0.5)
        _draw_boxes(ax, examples.boxes[i], GROUND_TRUTH_COLOR)
        _panel_title(ax, examples.titles[i])
    _colorbar(fig, axes, scale)
    return _finished(fig, method)


# --------------------------------------------------------------------------------------------
# Task 6
# --------------------------------------------------------------------------------------------


@_themed
def plot_one_pixel_cases(cases, title: str | None = None):
    """Each row a task's ``OnePixelCase``: the image with the attacked pixel circled (titled
    with the original and the adversarial class), the true class's Grad-CAM map before and
    after the attack, each scaled to [0, 1] on its own; one colorbar. ``None`` when there is
    no case. ``title`` (e.g. the model) goes above the grid."""
    if not cases:
        return None
    fig, axes = _image_axes(len(cases), 3, 2.4, 2.4 + 0.25, extra=0.8 + 0.35 * bool(title))
    maps, scale = _prepared(
        [c.before for c in cases] + [c.after for c in cases],
        "Grad-CAM of the true class, scaled to [0, 1] per map",
        _signed_label("Grad-CAM"),
    )
    for i, (row, case) in enumerate(zip(axes, cases)):
        x, y = case.xy
        row[0].imshow(case.image)
        _show_map(row[1], maps[i], scale)
        _show_map(row[2], maps[len(cases) + i], scale)
        for ax, panel_title in zip(row, (case.title, "map before", "map after")):
            ax.scatter([x], [y], s=120, facecolors="none", edgecolors="white", linewidths=1.5)
            _panel_title(ax, panel_title)
            ax.set_axis_off()
    _colorbar(fig, axes, scale)
    return _finished(fig, title)


@_themed
def plot_fgsm(summary: pd.DataFrame):
    """FGSM against epsilon (2 x 2 panels): the attack's success rate, the rank correlation of
    the maps before/after for the true and the adversarial class, and the pointing hit rate of
    the true class; a line per model (legend outside, on the right)."""
    columns = [
        "success (%)",
        "rank corr, true class",
        "rank corr, adversarial class",
        "pointing hit, true class (%)",
    ]
    fig, axes = plt.subplots(2, 2, figsize=(MAX_WIDTH, 6.4), sharex=True, layout="constrained")
    for ax, column in zip(axes.ravel(), columns):
        for model, group in summary.groupby("model", sort=False):
            ax.plot(group["epsilon"], group[column], marker="o", label=model)
        ax.set_title(column)
    for ax in axes[1]:
        ax.set_xlabel("epsilon (pixel scale 0-1)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), title="model", loc="outside right upper")
    return _finished(fig)


# --------------------------------------------------------------------------------------------
# Task 7
# --------------------------------------------------------------------------------------------


@_themed
def plot_fidelity_examples(examples, class_names, threshold: float = 0.10, title: str | None = None):
    """Rows: images of a task's ``FidelityExamples`` (their top-1 and top-2 classes to the
    left); columns: the image, then per method the saliency of the top-1 and the top-2 class,
    the pixels above ``threshold`` of the positive saliency (those Task 7 occludes) outlined in
    white. Maps scaled to [0, 1] (Task 7's saliency: the positive part of each map, so the
    negative attributions of Integrated Gradients and GradientSHAP are shown as 0) share one
    colorbar; maps passed with their sign get a diverging colormap centred at 0 and a second
    colorbar. ``title`` (e.g. the model) goes above the grid."""
    methods = list(examples.maps)
    n = len(examples.images)
    fig, axes = _image_axes(n, 1 + 2 * len(methods), 1.5, 1.5, extra=1.3 + 0.35 * bool(title))
    gray = np.ndim(examples.images) == 3
    prepared = {
        m: _prepared([examples.maps[m][i, k] for i in range(n) for k in (0, 1)], "", "") for m in methods
    }
    for i in range(n):
        axes[i, 0].imshow(examples.images[i], cmap="gray" if gray else None)
        top1, top2 = (class_names[c] for c in examples.classes[i])
        _row_label(axes[i, 0], f"top-1 {top1}\ntop-2 {top2}")
        for j, method in enumerate(methods):
            maps, scale = prepared[method]
            for k in (0, 1):
                ax = axes[i, 1 + 2 * j + k]
                saliency = maps[2 * i + k]
                _show_map(ax, saliency, scale)
                positive = np.clip(saliency, 0, None)
                peak = positive.max()
                if peak > 0:
                    ax.contour(positive / peak > threshold, levels=[0.5], colors="white", linewidths=0.8)
                ax.set_axis_off()
                if i == 0:
                    _panel_title(ax, f"{method}\n{'top-1' if k == 0 else 'top-2'}")
    _panel_title(axes[0, 0], "image")
    columns = {m: [1 + 2 * j, 2 + 2 * j] for j, m in enumerate(methods)}
    unsigned = [m for m in methods if not prepared[m][1].signed]
    signed = [m for m in methods if prepared[m][1].signed]
    _colorbars(
        fig,
        axes,
        [
            (
                MapScale(
                    MAP_COLORMAP,
                    colors.Normalize(0.0, 1.0),
                    "saliency: positive part, scaled to [0, 1] per map",
                ),
                sorted(c for m in unsigned for c in columns[m]),
            ),
            (
                MapScale(
                    DIVERGING_COLORMAP, colors.TwoSlopeNorm(0.0, -1.0, 1.0), _signed_label(", ".join(signed))
                ),
                sorted(c for m in signed for c in columns[m]),
            ),
        ],
    )
    return _finished(fig, title)


# --------------------------------------------------------------------------------------------
# Results page
# --------------------------------------------------------------------------------------------

#: What :func:`plot_forest` adds to a claim's heading for each kind of claim other than the paper's.
KIND_SUFFIXES = {"extension": " (extension)", "later-work": " (later work)"}
#: Columns :func:`plot_forest` needs (``paper`` and ``kind`` are optional).
FOREST_COLUMNS = ("claim", "label", "model", "estimate", "low", "high", "unit")


#: Height (inches) of one row of :func:`plot_forest`.
FOREST_ROW = 0.3


def _forest_rows(part: pd.DataFrame, width_pt: float, size: float) -> tuple[np.ndarray, list]:
    """Where the rows of one :func:`plot_forest` panel go: the y of each row (in row units) and
    the heading of each run of rows of one claim ``(y, text)``, the heading on its own line(s)
    above its rows, a little space before every heading but the first."""
    ys, headings, y = [], [], 0.0
    previous = None
    for _, row in part.iterrows():
        key = (row["claim"], row["label"], row["kind"])
        if key != previous:
            text = str(row["label"]) + KIND_SUFFIXES.get(row["kind"], "")
            text = _wrap(text, width_pt, size)
            lines = text.count("\n") + 1
            y += 0.0 if previous is None else 0.35
            headings.append((y + 0.4 * (lines - 1), text))
            y += 0.8 + 0.8 * (lines - 1) + 0.2
            previous = key
        ys.append(y)
        y += 1.0
    return np.array(ys), headings


@_themed
def plot_forest(effects: pd.DataFrame):
    """The results page's forest plot: per claim (a heading, with "(extension)" for the
    seed's extension claims and "(later work)" for claims of later papers) one row per model,
    this report's effect as a dot on its 95 % interval (a horizontal line), the paper's effect
    in the same unit as a red diamond on the same row where it has one, a dashed line at 0.
    Extension claims (``kind == "extension"``, not claims of the paper) have hollow dots. One
    panel per ``unit``, stacked, each with its own x axis; rows keep the table's order, top to
    bottom. The legend explaining the markers is below the panels.

    ``effects`` columns: ``claim`` (id), ``label`` (short text for the claim's heading),
    ``model``, ``estimate``, ``low``, ``high``, ``unit`` (e.g. "pp", "Spearman ρ"), and
    optionally ``paper`` (NaN where the paper gives none) and ``kind`` ("paper", "extension"
    or "later-work"; "paper" if absent). Rows without an estimate are left out; a missing interval
    bound draws the dot alone. Raises ``ValueError`` when the table is empty, lacks a column,
    or has no estimate."""
    if effects is None or len(effects) == 0:
        raise ValueError("plot_forest: the effects table is empty, there is no effect to draw")
    missing = [c for c in FOREST_COLUMNS if c not in effects.columns]
    if missing:
        raise ValueError(f"plot_forest: the effects table lacks column(s) {missing}")
    table = effects.copy()
    if "paper" not in table:
        table["paper"] = np.nan
    if "kind" not in table:
        table["kind"] = "paper"
    for column in ("estimate", "low", "high", "paper"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table = table[table["estimate"].notna()]
    if table.empty:
        raise ValueError("plot_forest: no row of the effects table has an estimate (all NaN)")
    table["unit"] = table["unit"].fillna("").astype(str)
    units = list(pd.unique(table["unit"]))
    size = _font_size("ytick.labelsize")
    label_width_in = max(_text_width_pt(str(m), size) for m in table["model"]) / 72 + 0.3
    heading_pt = 0.95 * (MAX_WIDTH - label_width_in - 0.2) * 72
    layouts = [_forest_rows(table[table["unit"] == u], heading_pt, size) for u in units]
    spans = [ys[-1] + 1.0 for ys, _ in layouts]
    color = sns.color_palette()[0]
    fig, axes = plt.subplots(
        len(units),
        1,
        figsize=(MAX_WIDTH, 0.5 + sum(FOREST_ROW * span + 0.75 for span in spans)),
        height_ratios=[span + 0.75 / FOREST_ROW for span in spans],
        squeeze=False,
        layout="constrained",
    )
    fig.get_layout_engine().set(h_pad=0.06)
    for ax, unit, (y, headings), span in zip(axes[:, 0], units, layouts, spans):
        part = table[table["unit"] == unit]
        est, low, high, paper = (part[c].to_numpy(float) for c in ("estimate", "low", "high", "paper"))
        extension = (part["kind"] == "extension").to_numpy()
        bounded = np.isfinite(low) & np.isfinite(high)
        ax.hlines(y[bounded], low[bounded], high[bounded], color=color, lw=2)
        ax.plot(est[~extension], y[~extension], "o", color=color, ms=7, gid="estimate", zorder=3)
        ax.plot(
            est[extension], y[extension], "o", mfc="white", mec=color, mew=1.8, ms=7, gid="estimate", zorder=3
        )
        has_paper = np.isfinite(paper)
        ax.plot(paper[has_paper], y[has_paper], "D", color=PAPER_COLOR, ms=8, gid="paper", zorder=2.5)
        ax.axvline(0, color="grey", ls="--", lw=1)
        values = np.concatenate([[0.0], est, low[bounded], high[bounded], paper[has_paper]])
        lo, hi = float(values.min()), float(values.max())
        pad = 0.06 * (hi - lo) if hi > lo else 1.0
        ax.set_xlim(lo - pad, hi + pad)
        for heading_y, text in headings:
            ax.text(
                0.005,
                heading_y,
                text,
                transform=mpl.transforms.blended_transform_factory(ax.transAxes, ax.transData),
                ha="left",
                va="center",
                fontsize=size,
                fontweight="bold",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0},
            )
        ax.set_yticks(y, list(part["model"].astype(str)))
        ax.set_ylim(span - 0.4, -0.6)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(f"effect ({unit})" if unit else "effect")
    handles = [
        Line2D([], [], color=color, marker="o", ms=7, lw=2, label="this report: effect, 95 % interval")
    ]
    if (table["kind"] == "extension").any():
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                marker="o",
                mfc="white",
                mew=1.8,
                ms=7,
                lw=2,
                label="extension (not the paper's)",
            )
        )
    if table["paper"].notna().any():
        paper = Line2D([], [], ls="none", marker="D", color=PAPER_COLOR, ms=7, label="the paper's effect")
        handles.append(paper)
    handles.append(Line2D([], [], color="grey", ls="--", lw=1, label="no effect (0)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# Beyond the paper
# --------------------------------------------------------------------------------------------

#: The similarity metrics of the sanity checks (Adebayo et al. 2018, Sec. 3) as panels title them.
SIMILARITY_TITLES = {
    "spearman_abs": "Spearman, absolute maps",
    "spearman_signed": "Spearman, signed maps",
    "ssim": "SSIM",
    "hog": "HOG similarity",
}


def _method_colors(methods) -> dict:
    """One colour per method, the same in every panel of a figure."""
    palette = sns.color_palette("tab10" if len(methods) <= 10 else "tab20", n_colors=max(10, len(methods)))
    return {method: palette[i] for i, method in enumerate(methods)}


@_themed
def plot_cascade(summary: pd.DataFrame, unrelated: str = "unrelated-images"):
    """Adebayo et al.'s cascade curves (their Fig. 4 and 5): one row of panels per model, one
    panel per similarity metric (:data:`SIMILARITY_TITLES`); x: the cascade's steps from the
    original model (similarity 1 by definition) to the fully randomised one, y: the mean
    similarity of each method's maps to the original model's, with its 95 % interval as a band;
    the similarity of two unrelated images' maps (rows whose ``step`` is ``unrelated``) as a
    dotted line in the method's colour on the right edge. ``summary`` columns: ``model``,
    ``step_index``, ``step``, ``method``, ``metric``, ``mean``, ``low``, ``high``."""
    models = list(dict.fromkeys(summary["model"]))
    metrics_shown = [m for m in SIMILARITY_TITLES if m in set(summary["metric"])]
    methods = list(dict.fromkeys(summary["method"]))
    colors_of = _method_colors(methods)
    fig, axes = plt.subplots(
        len(models),
        len(metrics_shown),
        figsize=(MAX_WIDTH, 0.8 + 2.9 * len(models)),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for row, model in enumerate(models):
        of_model = summary[summary["model"] == model]
        cascade = of_model[of_model["step"] != unrelated]
        steps = ["original", *dict.fromkeys(cascade.sort_values("step_index")["step"])]
        for col, metric in enumerate(metrics_shown):
            ax = axes[row, col]
            for method in methods:
                part = cascade[(cascade["method"] == method) & (cascade["metric"] == metric)]
                part = part.sort_values("step_index")
                if part.empty:
                    continue
                x = np.arange(len(part) + 1)
                mean = np.concatenate([[1.0], part["mean"].to_numpy(float)])
                low = np.concatenate([[1.0], part["low"].to_numpy(float)])
                high = np.concatenate([[1.0], part["high"].to_numpy(float)])
                ax.plot(x, mean, marker="o", ms=3, color=colors_of[method], label=method)
                ax.fill_between(x, low, high, color=colors_of[method], alpha=0.2, lw=0)
                level = of_model[
                    (of_model["step"] == unrelated)
                    & (of_model["method"] == method)
                    & (of_model["metric"] == metric)
                ]["mean"]
                if len(level) and np.isfinite(level.iloc[0]):
                    ax.hlines(
                        level.iloc[0], len(x) - 1.4, len(x) - 0.6, color=colors_of[method], ls=":", lw=2
                    )
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_xticks(np.arange(len(steps)), steps, rotation=60, ha="right", fontsize=10)
            if row == 0:
                _panel_title(ax, SIMILARITY_TITLES[metric])
            if col == 0:
                ax.set_ylabel(f"{model}\nsimilarity to original")
    handles = [Line2D([], [], color=colors_of[m], marker="o", ms=3, label=m) for m in methods]
    handles.append(Line2D([], [], color="grey", ls=":", lw=2, label="two unrelated images (level to reach)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    return _finished(fig)


@_themed
def plot_causal_curves(curves: pd.DataFrame):
    """Petsiuk et al.'s deletion and insertion curves: one row of panels per model, deletion
    (left; lower is better) and insertion (right; higher is better); x: the fraction of pixels
    removed or inserted in the order of the map, y: the mean probability of the explained class
    over the images, a line per method (the reference orders dashed). ``curves`` columns:
    ``model``, ``method``, ``curve``, ``fraction``, ``probability`` (and optionally
    ``reference``, true for the reference orders; else the methods "random" and "centre")."""
    models = list(dict.fromkeys(curves["model"]))
    methods = list(dict.fromkeys(curves["method"]))
    colors_of = _method_colors(methods)
    is_reference = (
        dict(zip(curves["method"], curves["reference"]))
        if "reference" in curves
        else {m: m in ("random", "centre") for m in methods}
    )
    fig, axes = plt.subplots(
        len(models),
        2,
        figsize=(MAX_WIDTH, 0.8 + 3.0 * len(models)),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for row, model in enumerate(models):
        for col, curve in enumerate(("deletion", "insertion")):
            ax = axes[row, col]
            part = curves[(curves["model"] == model) & (curves["curve"] == curve)]
            for method in methods:
                line = part[part["method"] == method].sort_values("fraction")
                if line.empty:
                    continue
                ax.plot(
                    line["fraction"],
                    line["probability"],
                    marker="o",
                    ms=3,
                    color=colors_of[method],
                    ls="--" if is_reference.get(method) else "-",
                    label=method,
                )
            better = "lower" if curve == "deletion" else "higher"
            _panel_title(ax, f"{model}: {curve} (area: {better} is better)")
            ax.set_xlabel(f"fraction of pixels {'removed' if curve == 'deletion' else 'inserted'}")
            ax.set_ylabel("probability of the class")
    handles = [
        Line2D([], [], color=colors_of[m], ls="--" if is_reference.get(m) else "-", marker="o", ms=3, label=m)
        for m in methods
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4)
    return _finished(fig)
