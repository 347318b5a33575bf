"""Figures (:mod:`gradcam_core.figures`): each function draws a matplotlib figure with the
expected panels from tiny hand-made tables and task dataclasses; every map figure has a
labelled colorbar, signed maps a diverging colormap centred at 0, and every text of every
figure stays legible once the figure is scaled to the book's 800 px column."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib import colors
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from gradcam_core import figures
from gradcam_core.tasks.chest_xray import XrayExamples
from gradcam_core.tasks.fidelity import FidelityExamples
from gradcam_core.tasks.localization import LocalizationExamples
from gradcam_core.tasks.occlusion import OcclusionExamples
from gradcam_core.tasks.sensitivity import OnePixelCase

RNG = np.random.default_rng(0)

#: The book's text column (px), the notebooks' inline figure resolution (dpi), and the smallest
#: text (px) a figure may show once scaled to the column.
COLUMN_PX = 800
SCREEN_DPI = 100
MIN_TEXT_PX = 10


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _image(h=12, w=12):
    return RNG.random((h, w, 3))


def _heat(h=12, w=12):
    return RNG.random((h, w))


def _suptitle(fig: Figure) -> str | None:
    return fig._suptitle.get_text() if fig._suptitle is not None else None


def _colorbars(fig: Figure) -> list:
    """The colorbars of ``fig``."""
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def _colorbar_labels(fig: Figure) -> list[str]:
    """The colorbars' labels, line breaks (wrapping) undone."""
    return [" ".join((bar.ax.get_xlabel() or bar.ax.get_ylabel()).split()) for bar in _colorbars(fig)]


def _panels(fig: Figure) -> list:
    """The axes of ``fig`` that are not colorbars."""
    return [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is None]


def _centred_at_zero(norm) -> bool:
    if isinstance(norm, colors.TwoSlopeNorm):
        return norm.vcenter == 0
    return norm.vmin is not None and np.isclose(norm.vmin, -norm.vmax)


def _drawn_texts(fig: Figure) -> list[Text]:
    """Every non-empty visible text of ``fig`` once drawn (ticks of hidden axes left out)."""
    fig.canvas.draw()
    hidden = set()
    for ax in fig.axes:
        if not ax.axison:
            hidden.update(id(t) for axis in (ax.xaxis, ax.yaxis) for t in axis.findobj(Text))
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def _smallest_text_px(fig: Figure) -> float:
    """The smallest text of ``fig`` in pixels, shown at :data:`SCREEN_DPI` and shrunk to the
    :data:`COLUMN_PX` column when wider (constrained layout keeps every text inside the figure,
    so its tight bounding box is no wider than the figure)."""
    texts = _drawn_texts(fig)
    scale = min(1.0, COLUMN_PX / (fig.get_figwidth() * SCREEN_DPI))
    return min(t.get_fontsize() for t in texts) * SCREEN_DPI / 72 * scale


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _sweep():
    return pd.DataFrame(
        {
            "model": ["m"] * 4,
            "method": ["grad-cam", "grad-cam", "cam", "cam"],
            "threshold": [0.1, 0.2, 0.1, 0.2],
            "loc top-1 err": [60.0, 55.0, 62.0, 58.0],
            "loc top-5 err": [50.0, 45.0, 52.0, 48.0],
        }
    )


def _localization_examples():
    return LocalizationExamples(
        images=[_image(), _image()],
        heatmaps=[_heat(), _heat()],
        gt_boxes=[np.array([[1, 1, 5, 5]]), np.array([[2, 2, 8, 9], [0, 0, 3, 3]])],
        pred_boxes=[np.array([1, 2, 6, 6]), None],
        titles=["a (right)", "b (wrong)"],
    )


def _curve():
    return pd.DataFrame(
        {
            "model": ["m", "m", "n"],
            "threshold": [0, 1, 0],
            "accuracy": [25.0, 50.0, 40.0],
            "recall": [100, 50, 90],
        }
    )


def _correlations():
    return pd.DataFrame(
        {
            "model": ["m"] * 4 + ["n"] * 4,
            "method": ["grad-cam", "grad-cam", "guided-backprop", "guided-backprop"] * 2,
            "resolution": ["56", "full"] * 4,
            "spearman": [0.1, 0.3, -0.1, 0.2, 0.2, 0.4, 0.0, 0.1],
        }
    )


def _occlusion_examples(signed: str | None = None):
    maps = {name: RNG.random((3, 12, 12)) for name in ("occlusion", "grad-cam")}
    if signed:
        maps[signed] = RNG.normal(size=(3, 12, 12))
    return OcclusionExamples(images=[_image(), _image(), _image()], maps=maps, titles=["x", "y", "z"])


def _study(tmp_path):
    (tmp_path / "images").mkdir(exist_ok=True)
    rows = []
    for i in range(3):
        stimulus = f"s{i + 1:03d}"
        for name in ("photo", "left", "right"):
            Image.fromarray((_image() * 255).astype(np.uint8)).save(
                tmp_path / "images" / f"{stimulus}_{name}.png"
            )
        rows.append(
            {
                "stimulus": stimulus,
                "class_name": "canoe",
                "method": "guided-backprop",
                "left_model": "a",
                "right_model": "b",
                "original_file": f"{stimulus}_photo.png",
                "left_file": f"{stimulus}_left.png",
                "right_file": f"{stimulus}_right.png",
            }
        )
    return pd.DataFrame(rows)


def _xray_examples(method="grad-cam", signed=False):
    maps = [RNG.normal(size=(16, 16)) if signed else _heat(16, 16) for _ in range(4)]
    return XrayExamples(
        images=[_image(16, 16) for _ in range(4)],
        titles=[f"Mass ({i}.png)" for i in range(4)],
        boxes=[np.array([[2.0, 2.0, 8.0, 8.0]]) for _ in range(4)],
        maps={method: maps},
    )


def _cases():
    return [OnePixelCase(_image(), _heat(), _heat(), (3, 4), f"a -> b {i}") for i in range(2)]


def _fgsm():
    return pd.DataFrame(
        {
            "model": ["m", "m", "n", "n"],
            "epsilon": [0.01, 0.05, 0.01, 0.05],
            "success (%)": [10.0, 60.0, 5.0, 40.0],
            "rank corr, true class": [0.9, 0.5, 0.8, 0.6],
            "rank corr, adversarial class": [np.nan, 0.2, 0.3, 0.1],
            "pointing hit, true class (%)": [80.0, 60.0, 70.0, 50.0],
        }
    )


FIDELITY_METHODS = ("grad-cam", "gradient-shap", "integrated-gradients")


def _fidelity_examples(shape=(2, 10, 10), signed=False):
    def saliency(method):
        if signed and method in figures.SIGNED_METHODS:
            return RNG.normal(size=(2, 2, 10, 10))
        return RNG.random((2, 2, 10, 10))

    return FidelityExamples(
        images=RNG.random(shape),
        classes=np.array([[3, 5], [1, 0]]),
        maps={m: saliency(m) for m in FIDELITY_METHODS},
    )


def _effects():
    return pd.DataFrame(
        {
            "claim": ["T1-a", "T1-a", "T3-b", "T3-b", "T6-c", "T6-c"],
            "label": ["Grad-CAM < c-MWP loc. error"] * 2
            + ["Grad-CAM ~ occlusion"] * 2
            + ["FGSM moves maps"] * 2,
            "model": ["squeezenet", "mobilenet"] * 3,
            "estimate": [-4.0, np.nan, 0.12, 0.30, -2.0, 1.0],
            "low": [-6.0, np.nan, 0.05, 0.21, -5.0, np.nan],
            "high": [-2.0, np.nan, 0.20, 0.38, 1.0, np.nan],
            "paper": [-14.4, -14.4, 0.26, np.nan, np.nan, np.nan],
            "unit": ["pp", "pp", "Spearman ρ", "Spearman ρ", "pp", "pp"],
            "kind": ["paper", "paper", "paper", "paper", "extension", "extension"],
        }
    )


#: Every figure function, drawn from the inputs above (for the checks they all share).
FIGURES = {
    "threshold_sweep": lambda tmp: figures.plot_threshold_sweep(_sweep(), 0.15),
    "boxes_on_maps": lambda tmp: figures.plot_boxes_on_maps(_localization_examples(), title="model"),
    "pointing_curve": lambda tmp: figures.plot_pointing_curve(_curve()),
    "correlation_distribution": lambda tmp: figures.plot_correlation_distribution(_correlations()),
    "map_grid": lambda tmp: figures.plot_map_grid(_occlusion_examples("c-mwp"), title="model"),
    "stimuli": lambda tmp: figures.plot_stimuli(tmp, _study(tmp), count=3),
    "xray_maps": lambda tmp: figures.plot_xray_maps(_xray_examples(), "grad-cam"),
    "xray_maps_signed": lambda tmp: figures.plot_xray_maps(
        _xray_examples("integrated-gradients", signed=True), "integrated-gradients"
    ),
    "one_pixel_cases": lambda tmp: figures.plot_one_pixel_cases(_cases(), title="model"),
    "fgsm": lambda tmp: figures.plot_fgsm(_fgsm()),
    "fidelity_examples": lambda tmp: figures.plot_fidelity_examples(
        _fidelity_examples(signed=True), [f"class {d}" for d in range(10)], title="model"
    ),
    "forest": lambda tmp: figures.plot_forest(_effects()),
}
#: The figures that draw maps as colour.
MAP_FIGURES = (
    "boxes_on_maps",
    "map_grid",
    "xray_maps",
    "xray_maps_signed",
    "one_pixel_cases",
    "fidelity_examples",
)


# --------------------------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIGURES))
def test_text_legible_in_the_column(name, tmp_path):
    fig = FIGURES[name](tmp_path)
    assert isinstance(fig, Figure)
    assert fig.get_size_inches()[0] <= 10
    assert min(t.get_fontsize() for t in _drawn_texts(fig)) >= 10
    assert _smallest_text_px(fig) >= MIN_TEXT_PX


@pytest.mark.parametrize("name", MAP_FIGURES)
def test_map_figures_have_labelled_colorbars(name, tmp_path):
    fig = FIGURES[name](tmp_path)
    labels = _colorbar_labels(fig)
    assert labels and all(label.strip() for label in labels)
    for bar in _colorbars(fig):
        if bar.cmap.name == figures.DIVERGING_COLORMAP:
            assert _centred_at_zero(bar.norm)


def test_set_theme_applies_the_theme_globally():
    with mpl.rc_context():
        figures.set_theme()
        for key, value in figures.THEME["rc"].items():
            assert mpl.rcParams[key] == value
        assert mpl.rcParams["axes.grid"]  # whitegrid


# --------------------------------------------------------------------------------------------
# Per figure
# --------------------------------------------------------------------------------------------


def test_threshold_sweep():
    fig = figures.plot_threshold_sweep(_sweep(), 0.15)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["loc top-1 err (%)", "loc top-5 err (%)"]
    # one legend, outside the panels
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1


@pytest.mark.parametrize("title", [None, "Grad-CAM boxes"])
def test_boxes_on_maps(title):
    fig = figures.plot_boxes_on_maps(_localization_examples(), title=title)
    panels = _panels(fig)
    assert isinstance(fig, Figure) and len(panels) == 2 * 2 and _suptitle(fig) == title
    assert panels[0].get_title() == "a (right)"
    # image 0: one ground-truth box and the extracted box, on the photo and on the map
    assert len(panels[0].patches) == 2 and len(panels[1].patches) == 2
    assert _colorbar_labels(fig) == ["Grad-CAM (top-1 class), scaled to [0, 1]"]
    assert panels[2].images[0].get_clim() == (0.0, 1.0)  # row 1: the maps


def test_pointing_curve():
    fig = figures.plot_pointing_curve(_curve())
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1


def test_correlation_distribution():
    table = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "method": ["grad-cam", "grad-cam", "guided-backprop", "guided-backprop"],
            "spearman": [0.1, 0.3, -0.1, 0.2],
        }
    )
    fig = figures.plot_correlation_distribution(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = figures.plot_correlation_distribution(_correlations())
    assert [ax.get_title() for ax in fig.axes] == ["pooled to 56 x 56", "full resolution"]
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1


def test_map_grid():
    fig = figures.plot_map_grid(_occlusion_examples(), title="maps")
    panels = _panels(fig)
    assert isinstance(fig, Figure) and len(panels) == 3 * (1 + 2) and _suptitle(fig) == "maps"
    assert [ax.get_title() for ax in panels[:3]] == ["image", "occlusion", "grad-cam"]
    assert [ax.get_ylabel() for ax in panels[:: 1 + 2]] == ["x", "y", "z"]  # the class left of each row
    assert len(_colorbars(fig)) == 1 and _colorbars(fig)[0].cmap.name == figures.MAP_COLORMAP


def test_map_grid_signed_column_gets_a_diverging_colorbar():
    fig = figures.plot_map_grid(_occlusion_examples("integrated-gradients"))
    bars = _colorbars(fig)
    assert [bar.cmap.name for bar in bars] == [figures.MAP_COLORMAP, figures.DIVERGING_COLORMAP]
    assert "integrated-gradients" in bars[1].ax.get_xlabel()
    signed_panel = _panels(fig)[3]  # row 0: image, occlusion, grad-cam, integrated-gradients
    image = signed_panel.images[0]
    assert image.get_cmap().name == figures.DIVERGING_COLORMAP and _centred_at_zero(image.norm)
    assert np.abs(image.get_array()).max() == pytest.approx(1.0)


def test_stimuli(tmp_path):
    fig = figures.plot_stimuli(tmp_path, _study(tmp_path), count=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3
    assert [ax.get_title() for ax in fig.axes[1:3]] == ["left: a", "right: b"]
    assert not _colorbars(fig)  # RGB gradient images, no colormap


def test_xray_maps():
    fig = figures.plot_xray_maps(_xray_examples(), "grad-cam", ncols=3)
    panels = _panels(fig)
    assert isinstance(fig, Figure) and len(panels) == 2 * 3  # 4 X-rays on a 2 x 3 grid
    assert _suptitle(fig) == "grad-cam" and panels[0].get_title() == "Mass (0.png)"
    assert len(panels[0].patches) == 1 and not panels[5].images  # the unused panels stay empty
    assert _colorbar_labels(fig) == ["grad-cam, min-max scaled to [0, 1]"]


def test_xray_maps_signed():
    # maps with their sign: diverging, centred at 0, each divided by its largest |value|
    fig = figures.plot_xray_maps(_xray_examples("gradient-shap", signed=True), "gradient-shap")
    overlay = _panels(fig)[0].images[1]
    assert overlay.get_cmap().name == figures.DIVERGING_COLORMAP and _centred_at_zero(overlay.norm)
    assert np.abs(overlay.get_array()).max() == pytest.approx(1.0)
    # min-max scaled maps of a signed method (what Task 5 passes now): [0, 1], and the label says
    fig = figures.plot_xray_maps(_xray_examples("gradient-shap"), "gradient-shap")
    assert _panels(fig)[0].images[1].get_cmap().name == figures.MAP_COLORMAP
    assert "sign not kept" in _colorbar_labels(fig)[0]


def test_one_pixel_cases():
    fig = figures.plot_one_pixel_cases(_cases(), title="attacks")
    panels = _panels(fig)
    assert isinstance(fig, Figure) and len(panels) == 2 * 3 and _suptitle(fig) == "attacks"
    assert [ax.get_title() for ax in panels[:3]] == ["a -> b 0", "map before", "map after"]
    assert panels[1].images[0].get_clim() == (0.0, 1.0) and len(_colorbars(fig)) == 1
    assert figures.plot_one_pixel_cases([]) is None


def test_fgsm():
    fig = figures.plot_fgsm(_fgsm())
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    assert len(fig.legends) == 1


@pytest.mark.parametrize("shape", [(2, 10, 10), (2, 10, 10, 3)])
def test_fidelity_examples(shape):
    examples = _fidelity_examples(shape)
    fig = figures.plot_fidelity_examples(examples, [str(d) for d in range(10)], threshold=0.1, title="mnist")
    panels = _panels(fig)
    assert isinstance(fig, Figure) and len(panels) == 2 * (1 + 2 * 3) and _suptitle(fig) == "mnist"
    assert panels[0].get_title() == "image" and panels[1].get_title() == "grad-cam\ntop-1"
    assert [ax.get_ylabel() for ax in panels[:: 1 + 2 * 3]] == ["top-1 3\ntop-2 5", "top-1 1\ntop-2 0"]
    assert _colorbar_labels(fig) == ["saliency: positive part, scaled to [0, 1] per map"]


def test_fidelity_examples_signed():
    fig = figures.plot_fidelity_examples(_fidelity_examples(signed=True), [str(d) for d in range(10)])
    bars = _colorbars(fig)
    assert [bar.cmap.name for bar in bars] == [figures.MAP_COLORMAP, figures.DIVERGING_COLORMAP]
    panels = _panels(fig)
    for column, method in ((1, "grad-cam"), (3, "gradient-shap"), (5, "integrated-gradients")):
        image = panels[column].images[0]
        if method in figures.SIGNED_METHODS:
            assert image.get_cmap().name == figures.DIVERGING_COLORMAP and _centred_at_zero(image.norm)
        else:
            assert image.get_cmap().name == figures.MAP_COLORMAP


def _points(fig: Figure, gid: str) -> int:
    return sum(len(line.get_xdata()) for ax in fig.axes for line in ax.lines if line.get_gid() == gid)


def test_forest():
    effects = _effects()
    fig = figures.plot_forest(effects)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # units: pp, Spearman ρ
    drawn = effects[effects["estimate"].notna()]
    assert _points(fig, "estimate") == len(drawn)
    assert _points(fig, "paper") == drawn["paper"].notna().sum()
    assert [ax.get_xlabel() for ax in fig.axes] == ["effect (pp)", "effect (Spearman ρ)"]
    # the pp panel: a heading per claim ("(extension)" for the extension), a row per model
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["squeezenet", "squeezenet", "mobilenet"]
    headings = [t.get_text() for t in fig.axes[0].texts]
    assert headings == ["Grad-CAM < c-MWP loc. error", "FGSM moves maps (extension)"]
    for ax in fig.axes:  # 0 is in view, marked by a vertical line
        low, high = ax.get_xlim()
        assert low < 0 < high
        assert any(np.allclose(line.get_xdata(), 0) for line in ax.lines if line.get_gid() is None)
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)


def test_forest_refuses_empty_tables():
    with pytest.raises(ValueError, match="empty"):
        figures.plot_forest(_effects().iloc[:0])
    with pytest.raises(ValueError, match="no row"):
        figures.plot_forest(_effects().assign(estimate=np.nan))
    with pytest.raises(ValueError, match="unit"):
        figures.plot_forest(_effects().drop(columns="unit"))


def test_forest_without_optional_columns():
    effects = _effects().drop(columns=["paper", "kind"]).dropna(subset=["estimate"])
    fig = figures.plot_forest(effects)
    assert _points(fig, "estimate") == len(effects) and _points(fig, "paper") == 0
    assert not any("(extension)" in t.get_text() for ax in fig.axes for t in ax.texts)


# --------------------------------------------------------------------------------------------
# Beyond the paper
# --------------------------------------------------------------------------------------------


def _cascade_summary():
    """Two models, two methods, two metrics, cascade steps "logits" (1) and "conv" (2) and the
    unrelated-images reference (step 0); backprop has no reference SSIM (NaN)."""
    rows = []
    for model in ("m", "n"):
        for method, start in (("grad-cam", 0.8), ("backprop", 0.6)):
            for metric in ("ssim", "spearman_abs"):  # not in SIMILARITY_TITLES' order
                for index, step, mean in (
                    (1, "logits", start),
                    (2, "conv", start - 0.3),
                    (0, "unrelated-images", 0.1),
                ):
                    if step == "unrelated-images" and method == "backprop" and metric == "ssim":
                        mean = np.nan
                    rows.append(
                        {
                            "model": model,
                            "step_index": index,
                            "step": step,
                            "method": method,
                            "metric": metric,
                            "mean": mean,
                            "low": mean - 0.05,
                            "high": mean + 0.05,
                        }
                    )
    return pd.DataFrame(rows)


def _dotted_segments(ax) -> list[tuple[tuple[float, float], float]]:
    """The horizontal dotted segments of ``ax`` (``hlines``) as ``((x0, x1), y)``."""
    segments = []
    for collection in ax.collections:
        styles = collection.get_linestyles()
        if isinstance(collection, mpl.collections.LineCollection) and styles and styles[0][1] is not None:
            for segment in collection.get_segments():
                (x0, y0), (x1, y1) = segment
                assert y0 == y1
                segments.append(((float(x0), float(x1)), float(y0)))
    return segments


def test_cascade():
    fig = figures.plot_cascade(_cascade_summary())
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 2  # 2 models x 2 metrics
    # metrics in SIMILARITY_TITLES' order; titles on the first row, the model's label on the first column
    assert [ax.get_title() for ax in fig.axes] == ["Spearman, absolute maps", "SSIM", "", ""]
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "m\nsimilarity to original",
        "",
        "n\nsimilarity to original",
        "",
    ]
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["original", "logits", "conv"]
        curves = [line for line in ax.lines if line.get_label() in ("grad-cam", "backprop")]
        assert len(curves) == 2 and len(ax.lines) == 3  # a line per method and the zero line
        grad_cam = curves[0]
        assert grad_cam.get_label() == "grad-cam"
        np.testing.assert_allclose(grad_cam.get_xdata(), [0, 1, 2])
        np.testing.assert_allclose(grad_cam.get_ydata(), [1.0, 0.8, 0.5])  # starts at 1: the original
        np.testing.assert_allclose(curves[1].get_ydata(), [1.0, 0.6, 0.3])
    # the unrelated level: a dotted segment at the last step in the method's colour, none where NaN
    spearman, ssim = fig.axes[0], fig.axes[1]
    assert sorted(_dotted_segments(spearman)) == [((1.6, 2.4), 0.1), ((1.6, 2.4), 0.1)]
    assert _dotted_segments(ssim) == [((1.6, 2.4), 0.1)]  # backprop's reference SSIM is NaN
    (level,) = [c for c in ssim.collections if isinstance(c, mpl.collections.LineCollection)]
    assert colors.to_hex(level.get_colors()[0]) == colors.to_hex(ssim.lines[0].get_color())  # grad-cam's
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(fig.legends) == 1 and legend == [
        "grad-cam",
        "backprop",
        "two unrelated images (level to reach)",
    ]


def test_cascade_of_one_metric_one_model():
    summary = _cascade_summary()
    fig = figures.plot_cascade(summary[(summary["model"] == "n") & (summary["metric"] == "ssim")])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "SSIM"
    assert fig.axes[0].get_ylabel() == "n\nsimilarity to original"


def _causal_curves():
    rows = []
    for model in ("m", "n"):
        for method, level in (("grad-cam", 0.5), ("score-cam", 0.6), ("random", 0.3), ("centre", 0.4)):
            for curve in ("deletion", "insertion"):
                for fraction in (1.0, 0.0, 0.5):  # unsorted: the lines go left to right
                    probability = level * (1 - fraction) if curve == "deletion" else level * fraction
                    rows.append(
                        {
                            "model": model,
                            "method": method,
                            "curve": curve,
                            "fraction": fraction,
                            "probability": probability,
                        }
                    )
    return pd.DataFrame(rows)


def test_causal_curves():
    fig = figures.plot_causal_curves(_causal_curves())
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 2  # models x (deletion, insertion)
    assert [ax.get_title() for ax in fig.axes] == [
        "m: deletion (area: lower is better)",
        "m: insertion (area: higher is better)",
        "n: deletion (area: lower is better)",
        "n: insertion (area: higher is better)",
    ]
    assert fig.axes[0].get_xlabel() == "fraction of pixels removed"
    assert fig.axes[1].get_xlabel() == "fraction of pixels inserted"
    for ax in fig.axes:
        assert [line.get_label() for line in ax.lines] == ["grad-cam", "score-cam", "random", "centre"]
        # the reference orders dashed, the methods solid
        assert [line.get_linestyle() for line in ax.lines] == ["-", "-", "--", "--"]
        np.testing.assert_allclose(ax.lines[0].get_xdata(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), [0.6, 0.3, 0.0])  # score-cam deletion
    np.testing.assert_allclose(fig.axes[3].lines[2].get_ydata(), [0.0, 0.15, 0.3])  # random insertion
    # each method keeps its colour in every panel
    for i in range(4):
        assert len({colors.to_hex(ax.lines[i].get_color()) for ax in fig.axes}) == 1
    assert len(fig.legends) == 1
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["grad-cam", "score-cam", "random", "centre"]
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", "-", "--", "--"]


def test_causal_curves_reference_column_decides_the_dashes():
    curves = _causal_curves()
    curves = curves[curves["model"] == "m"].assign(reference=lambda t: t["method"] == "score-cam")
    fig = figures.plot_causal_curves(curves)
    assert len(fig.axes) == 2
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-", "--", "-", "-"]


@pytest.mark.parametrize(
    "draw",
    [lambda: figures.plot_cascade(_cascade_summary()), lambda: figures.plot_causal_curves(_causal_curves())],
    ids=["cascade", "causal_curves"],
)
def test_beyond_the_paper_figures_legible_in_the_column(draw):
    fig = draw()
    assert fig.get_size_inches()[0] <= 10
    assert _smallest_text_px(fig) >= MIN_TEXT_PX
