"""Figures (:mod:`gradcam_core.figures`): each function draws a matplotlib figure with the
expected panels from tiny hand-made tables and task dataclasses."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from gradcam_core import figures
from gradcam_core.tasks.chest_xray import XrayExamples
from gradcam_core.tasks.fidelity import FidelityExamples
from gradcam_core.tasks.localization import LocalizationExamples
from gradcam_core.tasks.occlusion import OcclusionExamples
from gradcam_core.tasks.sensitivity import OnePixelCase

RNG = np.random.default_rng(0)


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


def test_threshold_sweep():
    sweep = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "method": ["grad-cam", "grad-cam", "cam", "cam"],
            "threshold": [0.1, 0.2, 0.1, 0.2],
            "loc top-1 err": [60.0, 55.0, 62.0, 58.0],
            "loc top-5 err": [50.0, 45.0, 52.0, 48.0],
        }
    )
    fig = figures.plot_threshold_sweep(sweep, 0.15)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["loc top-1 err (%)", "loc top-5 err (%)"]


@pytest.mark.parametrize("title", [None, "Grad-CAM boxes"])
def test_boxes_on_maps(title):
    examples = LocalizationExamples(
        images=[_image(), _image()],
        heatmaps=[_heat(), _heat()],
        gt_boxes=[np.array([[1, 1, 5, 5]]), np.array([[2, 2, 8, 9], [0, 0, 3, 3]])],
        pred_boxes=[np.array([1, 2, 6, 6]), None],
        titles=["a (right)", "b (wrong)"],
    )
    fig = figures.plot_boxes_on_maps(examples, title=title)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 2 and _suptitle(fig) == title
    assert fig.axes[0].get_title() == "a (right)"
    # image 0: one ground-truth box and the extracted box, on the photo and on the map
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[1].patches) == 2


def test_pointing_curve():
    curve = pd.DataFrame(
        {
            "model": ["m", "m", "n"],
            "threshold": [0, 1, 0],
            "accuracy": [25.0, 50.0, 40.0],
            "recall": [100, 50, 90],
        }
    )
    fig = figures.plot_pointing_curve(curve)
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and len(fig.axes[0].lines) == 2


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


def test_map_grid():
    examples = OcclusionExamples(
        images=[_image(), _image(), _image()],
        maps={name: RNG.random((3, 12, 12)) for name in ("occlusion", "grad-cam")},
        titles=["x", "y", "z"],
    )
    fig = figures.plot_map_grid(examples, title="maps")
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * (1 + 2) and _suptitle(fig) == "maps"
    assert [ax.get_title() for ax in fig.axes[:3]] == ["x", "occlusion", "grad-cam"]


def test_stimuli(tmp_path):
    (tmp_path / "images").mkdir()
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
    fig = figures.plot_stimuli(tmp_path, pd.DataFrame(rows), count=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3
    assert [ax.get_title() for ax in fig.axes[1:3]] == ["left: a", "right: b"]


def test_xray_maps():
    examples = XrayExamples(
        images=[_image(16, 16) for _ in range(4)],
        titles=[f"Mass ({i}.png)" for i in range(4)],
        boxes=[np.array([[2.0, 2.0, 8.0, 8.0]]) for _ in range(4)],
        maps={"grad-cam": [_heat(16, 16) for _ in range(4)]},
    )
    fig = figures.plot_xray_maps(examples, "grad-cam", ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3  # 4 X-rays on a 2 x 3 grid
    assert _suptitle(fig) == "grad-cam" and fig.axes[0].get_title() == "Mass (0.png)"
    assert len(fig.axes[0].patches) == 1 and not fig.axes[5].images  # the unused panels stay empty


def test_one_pixel_cases():
    cases = [OnePixelCase(_image(), _heat(), _heat(), (3, 4), f"a -> b {i}") for i in range(2)]
    fig = figures.plot_one_pixel_cases(cases, title="attacks")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3 and _suptitle(fig) == "attacks"
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a -> b 0", "map before", "map after"]
    assert figures.plot_one_pixel_cases([]) is None


def test_fgsm():
    summary = pd.DataFrame(
        {
            "model": ["m", "m", "n", "n"],
            "epsilon": [0.01, 0.05, 0.01, 0.05],
            "success (%)": [10.0, 60.0, 5.0, 40.0],
            "rank corr, true class": [0.9, 0.5, 0.8, 0.6],
            "rank corr, adversarial class": [np.nan, 0.2, 0.3, 0.1],
            "pointing hit, true class (%)": [80.0, 60.0, 70.0, 50.0],
        }
    )
    fig = figures.plot_fgsm(summary)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert all(len(ax.lines) == 2 for ax in fig.axes)


@pytest.mark.parametrize("shape", [(2, 10, 10), (2, 10, 10, 3)])
def test_fidelity_examples(shape):
    examples = FidelityExamples(
        images=RNG.random(shape),
        classes=np.array([[3, 5], [1, 0]]),
        maps={m: RNG.random((2, 2, 10, 10)) for m in ("grad-cam", "gradient-shap", "integrated-gradients")},
    )
    fig = figures.plot_fidelity_examples(examples, [str(d) for d in range(10)], threshold=0.1, title="mnist")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * (1 + 2 * 3) and _suptitle(fig) == "mnist"
    assert fig.axes[0].get_title() == "top-1 3" and fig.axes[1].get_title() == "grad-cam\ntop-1"
