"""The notebooks' setup (:mod:`gradcam_core.notebook`), with its global effects contained, and the
checks of their parameters as papermill passes them (``as_list``, ``check_positive_int``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from gradcam_core import notebook


def test_setup_seeds_silences_and_returns_the_folder(tmp_path):
    with warnings.catch_warnings(), pd.option_context("display.width", 80, "display.max_rows", 60):
        with torch.random.fork_rng(devices=[]):
            folder = notebook.setup(5, str(tmp_path / "results"))
            drawn = torch.rand(3)
            torch.manual_seed(5)
            assert torch.equal(drawn, torch.rand(3))
        assert folder == Path(tmp_path / "results") and isinstance(folder, Path)
        assert pd.get_option("display.width") == notebook.DISPLAY_WIDTH
        assert pd.get_option("display.max_rows") == notebook.DISPLAY_MAX_ROWS
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("a hook notice", UserWarning, stacklevel=1)
        assert caught == []  # silenced
        assert notebook.setup() is None


@pytest.mark.parametrize(
    "value, item_type, expected",
    [
        ("mobilenet_v1_0.75", None, ["mobilenet_v1_0.75"]),  # -p model_names mobilenet_v1_0.75
        ("  vgg16 ", str, ["vgg16"]),
        ('["vgg16", "alexnet"]', None, ["vgg16", "alexnet"]),  # -p model_names '["vgg16", "alexnet"]'
        ("['vgg16', 'alexnet']", str, ["vgg16", "alexnet"]),  # a Python literal
        ("[vgg16, alexnet]", str, ["vgg16", "alexnet"]),  # YAML's flow sequence
        (["vgg16", "alexnet"], str, ["vgg16", "alexnet"]),  # the parameters cell, or -y
        (("vgg16",), None, ["vgg16"]),
        ([56, "full"], (int, str), [56, "full"]),  # rank_resolutions
        ('[56, "full"]', (int, str), [56, "full"]),
        (0.2, None, [0.2]),  # -p thresholds 0.2
        ("[0.05, 0.1]", float, [0.05, 0.1]),
        ([0, 1], float, [0.0, 1.0]),
    ],
)
def test_as_list_reads_what_a_user_types(value, item_type, expected):
    result = notebook.as_list(value, "param", item_type)
    assert result == expected and isinstance(result, list)
    assert [type(x) for x in result] == [type(x) for x in expected]


@pytest.mark.parametrize(
    "value, item_type, error, message",
    [
        ([], None, ValueError, "at least one item"),
        ("[]", None, ValueError, "at least one item"),
        ("", None, ValueError, "empty string"),
        (["vgg16", " "], None, ValueError, "an empty name"),
        ('["vgg16"', None, ValueError, "'[\"vgg16\"' starts with '[' but is not a list literal"),
        ({"vgg16": 1}, None, TypeError, "got {'vgg16': 1} (dict)"),
        (None, None, TypeError, "got None (NoneType)"),
        (True, None, TypeError, "got True (bool)"),
        ({"vgg16"}, None, TypeError, "(set)"),
        ([["vgg16"]], None, TypeError, "got ['vgg16'] (list)"),
        ([True], None, TypeError, "got True (bool)"),
        (5, str, TypeError, "expected each item to be a name, got 5 (int)"),
        (["vgg16", 16], str, TypeError, "got 16 (int) in ['vgg16', 16]"),
        ("[0.1, high]", float, TypeError, "expected each item to be a number, got 'high'"),
        ([float("nan")], float, ValueError, "nan is not a finite number"),
        ([56, 2.5], (int, str), TypeError, "to be an integer or a name, got 2.5"),
    ],
)
def test_as_list_refuses_anything_else_naming_the_parameter(value, item_type, error, message):
    with pytest.raises(error) as caught:
        notebook.as_list(value, "model_names", item_type)
    assert str(caught.value).startswith("model_names: ") and message in str(caught.value)


@pytest.mark.parametrize(
    "value, allow_none, error",
    [
        (0, False, ValueError),
        (-3, True, ValueError),
        (2.0, False, TypeError),
        ("5", False, TypeError),
        (True, False, TypeError),
        (None, False, TypeError),
    ],
)
def test_check_positive_int_refuses_naming_the_parameter(value, allow_none, error):
    with pytest.raises(error, match=r"^n_images: expected a positive integer"):
        notebook.check_positive_int(value, "n_images", allow_none)


def test_check_positive_int_passes_counts_and_none_when_allowed():
    assert notebook.check_positive_int(3, "n_images") == 3
    assert notebook.check_positive_int(None, "n_images", allow_none=True) is None
