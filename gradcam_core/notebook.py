"""The setup every notebook of the report runs first, in one call (:func:`setup`), and the
checks of its parameters as papermill passes them (:func:`as_list`, :func:`check_positive_int`)."""

from __future__ import annotations

import ast
import json
import math
import numbers
import warnings
from pathlib import Path

import pandas as pd
import torch
import tqdm
import yaml

#: pandas' text width for tables printed in the notebooks (wide tables wrap less).
DISPLAY_WIDTH = 160
#: Rows pandas shows before it elides (the provenance page lists every weights file).
DISPLAY_MAX_ROWS = 500


def setup(seed: int | None = None, path: str | Path | None = None) -> Path | None:
    """Prepare a notebook run: progress bars as text (no ipywidgets), library ``UserWarning``s
    silenced (captum's and torch's hook notices), pandas' display options, torch's global seed
    when ``seed`` is given. Returns ``path`` (the notebook's output or results folder) as a
    :class:`~pathlib.Path` (None without)."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=tqdm.TqdmWarning)
    pd.set_option("display.width", DISPLAY_WIDTH)
    pd.set_option("display.max_rows", DISPLAY_MAX_ROWS)
    if seed is not None:
        torch.manual_seed(seed)
    return Path(path) if path is not None else None


#: What a user types as a list literal: JSON, a Python literal, or YAML's flow sequence
#: (``[vgg16, alexnet]``), tried in that order.
_LIST_PARSERS = (json.loads, ast.literal_eval, yaml.safe_load)


def _type_names(item_type) -> str:
    types = item_type if isinstance(item_type, tuple) else (item_type,)
    words = {str: "a name", int: "an integer", float: "a number"}
    return " or ".join(words.get(t, f"a {t.__name__}") for t in types)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _checked_item(item, name: str, item_type, value):
    """``item`` of the list parameter ``name`` (whole value ``value``) as ``item_type`` allows."""
    where = "" if value is item else f" in {value!r}"
    if isinstance(item, str):
        item = item.strip()
        if not item:
            raise ValueError(f"{name}: an empty name{where}")
    elif _is_number(item) and not math.isfinite(item):
        raise ValueError(f"{name}: {item!r} is not a finite number{where}")
    elif not _is_number(item):
        raise TypeError(
            f"{name}: each item must be a name or a number, got {item!r} ({type(item).__name__}){where}"
        )
    if item_type is None:
        return item
    types = item_type if isinstance(item_type, tuple) else (item_type,)
    for wanted in types:
        if wanted is float and _is_number(item):
            return float(item)
        if wanted is int and isinstance(item, numbers.Integral) and not isinstance(item, bool):
            return int(item)
        if wanted is str and isinstance(item, str):
            return item
    raise TypeError(
        f"{name}: expected each item to be {_type_names(item_type)}, got {item!r} "
        f"({type(item).__name__}){where}"
    )


def as_list(value, name: str, item_type=None) -> list:
    """The list parameter ``name`` of a notebook as a list, from whatever a user passes for it.

    papermill's ``-p NAME VALUE`` hands the notebook a string (or an int, float, bool or None
    when VALUE reads as one), so each of these gives the same list:

    - a list or tuple: ``["vgg16", "alexnet"]`` (the parameters cell, papermill's ``-y`` YAML form
      ``-y 'model_names: [vgg16, alexnet]'``, or papermill's Python API);
    - a string naming one item: ``-p model_names mobilenet_v1_0.75`` -> ``["mobilenet_v1_0.75"]``;
      likewise one number: ``-p thresholds 0.2`` -> ``[0.2]``;
    - a string that is a list literal (starts with ``[``): JSON ``'["vgg16", "alexnet"]'``,
      Python ``"['vgg16', 'alexnet']"`` or YAML ``'[vgg16, alexnet]'``.

    Items are names (stripped of surrounding blanks) or numbers (``bool`` is not a number).
    ``item_type`` restricts them: ``str`` (names), ``float`` (numbers, returned as float; ints
    are accepted), ``int``, or a tuple of those (``(int, str)`` for ``rank_resolutions``:
    ``[56, "full"]``); ``None`` allows names and numbers alike.

    Raises ``ValueError`` for an empty list, an empty name, a string starting with ``[`` that is
    no list literal, or a number that is not finite; ``TypeError`` for anything else (None, a
    dict, a set, a nested list, a bool, a number where ``item_type`` asks for a name). Each
    message names the parameter ``name`` and the value it got.
    """
    original = value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"{name}: expected a name or a list, got an empty string")
        if text.startswith("["):
            for parse in _LIST_PARSERS:
                try:
                    value = parse(text)
                except (ValueError, SyntaxError, TypeError, RecursionError, yaml.YAMLError):
                    continue
                if isinstance(value, list):
                    break
            else:
                raise ValueError(
                    f"{name}: {original!r} starts with '[' but is not a list literal "
                    "(JSON such as '[\"a\", \"b\"]', Python or YAML such as '[a, b]')"
                )
        else:
            value = [text]
    elif _is_number(value):
        value = [value]
    elif isinstance(value, tuple):
        value = list(value)
    elif not isinstance(value, list):
        raise TypeError(
            f"{name}: expected a list, one name or a list literal string, got {original!r} "
            f"({type(original).__name__})"
        )
    if not value:
        raise ValueError(f"{name}: expected at least one item, got an empty list ({original!r})")
    return [_checked_item(item, name, item_type, original) for item in value]


def check_positive_int(value, name: str, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (a count such as ``n_images``), or None when ``allow_none``.
    ``TypeError`` for a bool, a float or a string, ``ValueError`` for zero or a negative number;
    each message names the parameter ``name`` and the value."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        allowed = "a positive integer" + (" or None" if allow_none else "")
        raise TypeError(f"{name}: expected {allowed}, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)
