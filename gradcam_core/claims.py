"""The claims registry (``data/reference/claims.yaml``) and the verdict of each claim, computed
from the per-image results files the task notebooks write (``results/<notebook>/...``); no
verdict is ever typed.

A claim says what the paper (``kind: paper``), the seed reproduction (``kind: extension``:
its Tasks 5, 6, 7 and FGSM, which are not claims of the paper) or a later paper that tests or
improves on Grad-CAM (``kind: later-work``: sanity checks, deletion and insertion, Grad-CAM's
successors; the chapter *Beyond the paper*) found, with the paper's numbers,
model, data set and protocol, what this report measures for it, the page that shows it, and the
``rule`` that gives its verdict. Verdicts come from a small set (:data:`VERDICTS`):

``ordering`` -- "method A is better than method B" on the same images. Per model (the ``model``
column of the results file) the two sides (``a``, ``b``: column filters) are paired on
``pair_on`` (default ``[image]``) and the mean difference ``a - b`` gets its 95 % paired
bootstrap interval (:func:`gradcam_core.statistics.paired_difference`, seed 0). A model's
outcome is *for* when the interval excludes 0 in the paper's direction (``better: higher``:
low > 0; ``better: lower``: high < 0), *against* when it excludes 0 the other way, *neither*
when it contains 0 or rests on fewer than :data:`MIN_PAIRS` pairs. Over the models that have
pairs:

======================================  ==================================================
outcomes                                verdict
======================================  ==================================================
every model *for*                       reproduced
some *for*, the rest *neither*          partly reproduced (which models)
some *for*, some *against*              partly reproduced (model-dependent)
no *for*, at least one *against*        not reproduced
every model *neither*                   inconclusive
no results file / no rows selected      not run (why)
======================================  ==================================================

``chain`` -- several orderings (``steps``) that share the chain's ``results``, ``metric``,
``better``, ``where``, ``pair_on``, ``scale`` unless a step overrides them (e.g. the paper's
Guided Grad-CAM > Grad-CAM > Guided Backprop): every step reproduced -> reproduced; every step
not reproduced -> not reproduced; every step inconclusive -> inconclusive; any step not run ->
not run; any other mix -> partly reproduced (the steps' verdicts named).

``within`` -- "the two methods give the same maps": per model, the largest value of ``metric``
(e.g. the largest absolute difference of two methods' normalised maps) over the selected rows is
*for* when it is at most ``at_most`` (a numerical tolerance, not an effect size), else
*against*; combined over the models as for an ordering (every model *for* -> reproduced, every
model *against* -> not reproduced, a mix -> partly reproduced).

``absolute`` -- this report's value per model (mean with a 95 % Wilson interval for a right /
wrong metric, else the percentile bootstrap interval of the mean; with ``metric_b`` the paired
difference of the two columns) shown beside the paper's number, never judged: the verdict is
always "not testable here" (stand-in models).

``not_testable`` / ``not_run`` -- a fixed verdict with its ``reason``.

Filters (``where``, ``a``, ``b``) compare values as text after one canonical form
(:func:`canonical`): numbers to 6 significant digits (as :func:`gradcam_core.results.write_table`
writes them, so ``56`` read from a CSV matches ``"56"`` in the registry), booleans as
``True``/``False`` whatever their spelling, missing values as ``nan``. Right/wrong columns count
as 0/1; ``as_error: true`` turns them into errors (1 - value) so that a table of right decisions
(``loc_top1``) is judged as the paper's error rates. ``scale`` multiplies the shown values (100:
percent, 1 decimal; otherwise 3 decimals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import statistics
from .results import REFERENCE_DIR

CLAIMS_FILE = REFERENCE_DIR / "claims.yaml"

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
NOT_RUN = "not run"
#: The verdicts a claim can get (the last two always with a reason).
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE, NOT_RUN)

KINDS = ("paper", "extension", "later-work")
#: How the report names each kind of claim beside its id.
KIND_NAMES = {
    "paper": "",
    "extension": "extension of the DD2412 reproduction",
    "later-work": "claim of later work, beyond the paper",
}
#: The registry's rule types and their fields: (required, optional).
RULE_FIELDS = {
    "ordering": (
        ("results", "metric", "better", "a", "b"),
        ("where", "scale", "metric_b", "pair_on", "as_error", "label"),
    ),
    "chain": (("steps",), ("results", "metric", "better", "where", "scale", "pair_on", "as_error")),
    "within": (("results", "metric", "at_most"), ("where",)),
    "absolute": (("results", "metric"), ("where", "scale", "metric_b", "as_error", "reason")),
    "not_testable": (("reason",), ()),
    "not_run": (("reason",), ()),
}
#: Fields of a claim, and of its ``paper`` mapping.
CLAIM_FIELDS = ("id", "kind", "section", "claim", "paper", "measured", "link", "rule")
PAPER_FIELDS = ("numbers", "model", "dataset", "protocol")
#: The fields a chain passes to its steps unless a step sets its own.
CHAIN_SHARED = ("results", "metric", "better", "where", "scale", "pair_on", "as_error")
#: Fewer pairs than this leave an ordering's outcome for a model at *neither*, whatever the
#: interval (a bootstrap over one or two pairs has no spread to speak of).
MIN_PAIRS = 5
#: The verdict of an ``absolute`` rule when the registry gives no reason of its own.
ABSOLUTE_REASON = "stand-in models; absolute numbers are shown, not judged"
#: Table columns of :func:`verdict_table`.
TABLE_COLUMNS = ("claim", "kind", "section", "statement", "paper", "this report", "verdict", "link")


class ClaimError(ValueError):
    """A registry entry that is malformed; the message names the claim and the field."""


@dataclass(frozen=True)
class Verdict:
    """The verdict of one claim.

    - ``verdict``: one of :data:`VERDICTS`;
    - ``reason``: why it was not run or is not testable, or which models (steps) make it partial;
    - ``this_report``: what this report measured, one short entry per model (per step of a chain);
    - ``per_model``: the numbers behind it, unscaled. Ordering: model -> ``a``, ``b`` (the two
      sides' means), ``difference`` (a :class:`~gradcam_core.statistics.PairedDifference`),
      ``outcome`` ("for", "against", "neither"). Absolute value: model -> ``value``, ``low``,
      ``high``, ``n`` (with ``metric_b``: ``a``, ``b``, ``difference``). Chain: step label ->
      that step's ``per_model``;
    - ``steps``: for a chain, step label -> the step's :class:`Verdict`.
    """

    verdict: str
    reason: str = ""
    this_report: str = ""
    per_model: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; known: {', '.join(VERDICTS)}")

    @property
    def label(self) -> str:
        """The verdict with its reason in brackets, as the results page shows it."""
        return f"{self.verdict} ({self.reason})" if self.reason else self.verdict


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


def _fail(claim_id, field_name: str, problem: str):
    raise ClaimError(f"claim {claim_id!r}: field {field_name!r} {problem}")


def _check_filter(claim_id, name: str, value, required: bool):
    if value is None and not required:
        return
    if not isinstance(value, dict) or (required and not value):
        _fail(claim_id, name, "must be a non-empty mapping of column -> value")
    for column, wanted in value.items():
        if isinstance(wanted, (dict, list)):
            _fail(claim_id, f"{name}.{column}", "must be a single value")


def _check_rule(claim_id, rule, prefix: str = "rule") -> None:
    """Validate one rule (a chain's steps with the chain's shared fields merged in)."""
    if not isinstance(rule, dict):
        _fail(claim_id, prefix, "must be a mapping with a 'type'")
    kind = rule.get("type")
    if kind not in RULE_FIELDS:
        _fail(claim_id, f"{prefix}.type", f"must be one of {', '.join(RULE_FIELDS)}; got {kind!r}")
    required, optional = RULE_FIELDS[kind]
    unknown = set(rule) - set(required) - set(optional) - {"type"}
    if unknown:
        _fail(claim_id, f"{prefix}.{sorted(unknown)[0]}", f"is not a field of a {kind!r} rule")
    for name in required:
        if rule.get(name) in (None, "", [], {}):
            _fail(claim_id, f"{prefix}.{name}", f"is required by a {kind!r} rule")
    if kind in ("not_run", "not_testable") and not isinstance(rule["reason"], str):
        _fail(claim_id, f"{prefix}.reason", "must be text")
    if kind == "within" and (
        isinstance(rule["at_most"], bool)
        or not isinstance(rule["at_most"], (int, float))
        or rule["at_most"] < 0
    ):
        _fail(claim_id, f"{prefix}.at_most", f"must be a number >= 0; got {rule['at_most']!r}")
    if kind in ("ordering", "absolute", "within"):
        for name in ("results", "metric", "metric_b", "label", "reason"):
            if name in rule and not isinstance(rule[name], str):
                _fail(claim_id, f"{prefix}.{name}", "must be text")
        if Path(rule["results"]).is_absolute() or ".." in Path(rule["results"]).parts:
            _fail(claim_id, f"{prefix}.results", "must be a path inside the results folder")
        _check_filter(claim_id, f"{prefix}.where", rule.get("where"), required=False)
        scale = rule.get("scale", 1)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            _fail(claim_id, f"{prefix}.scale", f"must be a positive number; got {scale!r}")
        if not isinstance(rule.get("as_error", False), bool):
            _fail(claim_id, f"{prefix}.as_error", "must be true or false")
    if kind == "ordering":
        if rule["better"] not in ("higher", "lower"):
            _fail(claim_id, f"{prefix}.better", f"must be 'higher' or 'lower'; got {rule['better']!r}")
        _check_filter(claim_id, f"{prefix}.a", rule["a"], required=True)
        _check_filter(claim_id, f"{prefix}.b", rule["b"], required=True)
        if rule["a"] == rule["b"] and rule.get("metric_b", rule["metric"]) == rule["metric"]:
            _fail(claim_id, f"{prefix}.b", "selects the same rows and column as 'a'")
        pair_on = rule.get("pair_on", ["image"])
        if not isinstance(pair_on, list) or not pair_on or not all(isinstance(c, str) for c in pair_on):
            _fail(claim_id, f"{prefix}.pair_on", "must be a non-empty list of column names")
    if kind == "chain":
        if not isinstance(rule["steps"], list):
            _fail(claim_id, f"{prefix}.steps", "must be a list of orderings")
        for i, step in enumerate(chain_steps(rule)):
            _check_rule(claim_id, step, f"{prefix}.steps[{i}]")


def chain_steps(rule: dict) -> list[dict]:
    """A chain's steps as ordering rules, each with the chain's shared fields
    (:data:`CHAIN_SHARED`) where the step does not set its own."""
    shared = {name: rule[name] for name in CHAIN_SHARED if name in rule}
    steps = []
    for step in rule["steps"]:
        if not isinstance(step, dict):
            steps.append(step)  # refused by the validation that calls this
            continue
        steps.append({"type": "ordering", **shared, **step})
    return steps


def validate_claim(claim) -> None:
    """Raise :class:`ClaimError`, naming the claim id and the field, unless ``claim`` has every
    field of :data:`CLAIM_FIELDS` (and of :data:`PAPER_FIELDS` under ``paper``) as the module
    docstring describes them and a rule of a known type with its fields."""
    if not isinstance(claim, dict):
        raise ClaimError(f"a claim must be a mapping, got {claim!r}")
    claim_id = claim.get("id")
    if not isinstance(claim_id, str) or not claim_id:
        raise ClaimError(f"a claim has no 'id' (fields: {', '.join(map(str, claim))})")
    unknown = set(claim) - set(CLAIM_FIELDS)
    if unknown:
        _fail(claim_id, sorted(unknown)[0], f"is not a claim field ({', '.join(CLAIM_FIELDS)})")
    for name in CLAIM_FIELDS:
        if claim.get(name) in (None, "", {}):
            _fail(claim_id, name, "is required")
    for name in ("section", "claim", "measured", "link"):
        if not isinstance(claim[name], str):
            _fail(claim_id, name, "must be text")
    if claim["kind"] not in KINDS:
        _fail(claim_id, "kind", f"must be one of {', '.join(KINDS)}; got {claim['kind']!r}")
    if not isinstance(claim["paper"], dict):
        _fail(claim_id, "paper", f"must be a mapping with {', '.join(PAPER_FIELDS)}")
    for name in PAPER_FIELDS:
        if not isinstance(claim["paper"].get(name), str) or not claim["paper"][name]:
            _fail(claim_id, f"paper.{name}", "is required (text)")
    effect = claim["paper"].get("effect")
    steps = len(claim["rule"].get("steps", [])) if isinstance(claim["rule"], dict) else 0
    if effect is not None and not (
        (steps and isinstance(effect, list) and len(effect) == steps and all(_is_number(e) for e in effect))
        or (not steps and _is_number(effect))
    ):
        _fail(claim_id, "paper.effect", "must be a number (a list of one per step for a chain)")
    _check_rule(claim_id, claim["rule"])


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_claims(path: str | Path = CLAIMS_FILE) -> list[dict]:
    """The claims of the registry (a YAML list under ``claims:``), each validated
    (:func:`validate_claim`), ids unique."""
    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        raise ClaimError(f"{path}: the registry must hold a list under 'claims:'")
    seen = set()
    for claim in document["claims"]:
        validate_claim(claim)
        if claim["id"] in seen:
            _fail(claim["id"], "id", "is not unique")
        seen.add(claim["id"])
    return document["claims"]


# --------------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------------


def canonical(value) -> str:
    """One text form per value for filter matching: booleans ``True``/``False`` (also from
    the text "true"), numbers to 6 significant digits (``56``, ``56.0`` and ``"56"`` all read
    ``"56"``), missing values (None, NaN, empty text) ``"nan"``, other text stripped."""
    if value is None:
        return "nan"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return "nan" if math.isnan(number) else format(number, ".6g")
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.capitalize()
    if text.lower() in ("", "nan", "none"):
        return "nan"
    try:
        return format(float(text), ".6g")
    except ValueError:
        return text


def _describe_filter(selector: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in selector.items()) + "}"


class NotRun(Exception):
    """A comparison that cannot be made from the results at hand (the message says why)."""


def _notebook_of(results: str) -> str:
    return Path(results).parts[0]


def _read(results_dir: Path, results: str, cache: dict | None) -> pd.DataFrame:
    """The results file ``results`` (relative to ``results_dir``), read once per cache."""
    if cache is not None and results in cache:
        return cache[results]
    path = Path(results_dir) / results
    if not path.is_file():
        raise NotRun(f"results file {results} missing: run notebook {_notebook_of(results)}")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise NotRun(f"results file {results} is empty: re-run notebook {_notebook_of(results)}") from None
    if cache is not None:
        cache[results] = table
    return table


def _require_columns(table: pd.DataFrame, columns, results: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in table.columns]
    if missing:
        raise NotRun(
            f"column {', '.join(missing)} missing from {results}: re-run notebook {_notebook_of(results)}"
        )


def select(table: pd.DataFrame, selector: dict | None) -> pd.DataFrame:
    """The rows of ``table`` whose columns match every ``column: value`` of ``selector``, values
    compared in their :func:`canonical` form."""
    rows = np.ones(len(table), bool)
    for column, wanted in (selector or {}).items():
        rows &= (_canonical_column(table[column]) == canonical(wanted)).to_numpy(bool)
    return table[rows]


def _canonical_column(values: pd.Series) -> pd.Series:
    """:func:`canonical` of every value of a column (computed once per distinct value)."""
    return values.map({value: canonical(value) for value in pd.unique(values)})


def as_numbers(values: pd.Series) -> tuple[np.ndarray, bool]:
    """A results column as floats, and whether it is a right/wrong column: booleans, or their
    text "True"/"False" (a CSV column of booleans with gaps reads as text), count as 0/1,
    missing values as NaN."""
    if values.dtype == bool:
        return values.to_numpy(np.float64), True
    if not pd.api.types.is_numeric_dtype(values):  # object, or pandas' text dtype
        forms = _canonical_column(values)
        present = forms[forms != "nan"]
        if len(present) and present.isin(["True", "False"]).all():
            return forms.map({"True": 1.0, "False": 0.0}).to_numpy(np.float64), True
    return pd.to_numeric(values, errors="coerce").to_numpy(np.float64), False


def _by_model(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if "model" not in table.columns:
        return {"all": table}
    return {str(model): group for model, group in table.groupby("model", sort=False)}


def _digits(scale: float) -> int:
    return 1 if scale == 100 else 3


def _fmt(value: float, scale: float) -> str:
    """``value`` times ``scale`` at the shown precision (1 decimal in %, else 3), never "-0.0"."""
    text = f"{scale * value:.{_digits(scale)}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _fmt_interval(difference: statistics.PairedDifference, scale: float) -> str:
    """A paired difference with its interval, scaled (:func:`statistics.format_interval`)."""
    return statistics.format_interval(
        scale * difference.mean, scale * difference.low, scale * difference.high, _digits(scale)
    )


def _values(table: pd.DataFrame, column: str, as_error: bool) -> tuple[np.ndarray, bool]:
    values, binary = as_numbers(table[column])
    if as_error:
        if not binary:
            raise ClaimError(f"as_error needs a right/wrong column; {column!r} holds numbers")
        values = 1.0 - values
    return values, binary


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


def step_label(rule: dict) -> str:
    """A short name of an ordering: its ``label``, else the values that tell side ``a`` from
    side ``b`` ("guided-grad-cam vs grad-cam"), else its two columns."""
    if rule.get("label"):
        return rule["label"]
    differing = [k for k in dict.fromkeys([*rule["a"], *rule["b"]]) if rule["a"].get(k) != rule["b"].get(k)]
    if differing:
        side = [" ".join(str(s[k]) for k in differing if k in s) for s in (rule["a"], rule["b"])]
        return f"{side[0]} vs {side[1]}"
    return f"{rule['metric']} vs {rule.get('metric_b', rule['metric'])}"


def _outcome(difference: statistics.PairedDifference, better: str) -> str:
    direction = difference.excludes_zero() * (1 if better == "higher" else -1)
    return {1: "for", -1: "against", 0: "neither"}[direction]


def _combine(outcomes: dict[str, str]) -> tuple[str, str]:
    """The verdict of an ordering from its per-model outcomes (the module docstring's table),
    with the detail that names the models of a mixed result."""
    values = list(outcomes.values())
    n_for, n_against = values.count("for"), values.count("against")
    if n_for == len(values):
        return REPRODUCED, ""
    if n_against == len(values):
        return NOT_REPRODUCED, ""
    if n_for + n_against == 0:
        return INCONCLUSIVE, ""
    words = {"for": "in the paper's direction", "against": "reversed", "neither": "interval contains 0"}
    detail = "; ".join(f"{model}: {words[o]}" for model, o in outcomes.items())
    if n_for and n_against:
        return PARTLY, f"model-dependent: {detail}"
    return (PARTLY if n_for else NOT_REPRODUCED), detail


def _paired_sides(rule: dict, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The two sides of an ordering joined on model and ``pair_on`` (columns ``a`` and ``b``:
    the values compared), and the models that have rows but no pair."""
    results, metric = rule["results"], rule["metric"]
    metric_b = rule.get("metric_b", metric)
    keys = list(rule.get("pair_on", ["image"]))
    where = rule.get("where") or {}
    _require_columns(table, [*where, *rule["a"], *rule["b"], *keys, metric, metric_b], results)
    base = select(table, where)
    sides = []
    for name, selector, column in (("a", rule["a"], metric), ("b", rule["b"], metric_b)):
        rows = select(base, selector)
        if not len(rows):
            chosen = {**where, **selector}
            raise NotRun(f"no rows for {_describe_filter(chosen)} in {results}")
        model = rows["model"].astype(str) if "model" in rows.columns else pd.Series("all", index=rows.index)
        values, _ = _values(rows, column, rule.get("as_error", False))
        side = rows[keys].assign(model=model.to_numpy(), **{name: values})
        duplicated = side.duplicated(["model", *keys])
        if duplicated.any():
            raise NotRun(
                f"{int(duplicated.sum())} rows of {_describe_filter({**where, **selector})} in {results} "
                f"repeat a (model, {', '.join(keys)}): the registry's filter must pick one row per pair"
            )
        sides.append(side)
    both = sides[0].merge(sides[1], on=["model", *keys], how="inner", validate="one_to_one")
    unpaired = sorted((set(sides[0]["model"]) | set(sides[1]["model"])) - set(both["model"]))
    return both, unpaired


def evaluate_ordering(rule: dict, results_dir: str | Path, cache: dict | None = None) -> Verdict:
    """The verdict of an ``ordering`` rule (module docstring): per model the paired difference
    ``a - b`` on the pairs both sides have and its outcome, combined over the models."""
    try:
        table = _read(Path(results_dir), rule["results"], cache)
        both, unpaired = _paired_sides(rule, table)
    except NotRun as reason:
        return Verdict(NOT_RUN, str(reason))
    scale = rule.get("scale", 1)
    per_model, lines = {}, []
    for model, group in both.groupby("model", sort=False):
        difference = statistics.paired_difference(group["a"], group["b"], seed=0)
        outcome = _outcome(difference, rule["better"]) if difference.n >= MIN_PAIRS else "neither"
        complete = np.isfinite(group["a"]) & np.isfinite(group["b"])
        a, b = float(group["a"][complete].mean()), float(group["b"][complete].mean())
        per_model[model] = {"a": a, "b": b, "difference": difference, "outcome": outcome}
        lines.append(
            f"{model}: {_fmt(a, scale)} vs {_fmt(b, scale)}, diff {_fmt_interval(difference, scale)}, "
            f"n={difference.n}" + (" (too few pairs to judge)" if difference.n < MIN_PAIRS else "")
        )
    if not per_model:
        keys = ", ".join(rule.get("pair_on", ["image"]))
        return Verdict(NOT_RUN, f"the two sides share no ({keys}) in {rule['results']}")
    verdict, detail = _combine({m: d["outcome"] for m, d in per_model.items()})
    if unpaired:
        detail = "; ".join(filter(None, [detail, f"no pairs for {', '.join(unpaired)}"]))
    return Verdict(verdict, detail, "; ".join(lines), per_model)


def evaluate_chain(rule: dict, results_dir: str | Path, cache: dict | None = None) -> Verdict:
    """The verdict of a ``chain`` of orderings (module docstring): each step's verdict,
    combined."""
    steps = {}
    for step in chain_steps(rule):
        label = step_label(step)
        steps[label if label not in steps else f"{label} ({len(steps) + 1})"] = evaluate_ordering(
            step, results_dir, cache
        )
    verdicts = [v.verdict for v in steps.values()]
    not_run = [f"{label}: {v.reason}" for label, v in steps.items() if v.verdict == NOT_RUN]
    this_report = " | ".join(f"{label}: {v.this_report}" for label, v in steps.items() if v.this_report)
    per_model = {label: v.per_model for label, v in steps.items()}
    if not_run:
        reasons = {v.reason for v in steps.values()}
        reason = reasons.pop() if len(not_run) == len(steps) and len(reasons) == 1 else "; ".join(not_run)
        return Verdict(NOT_RUN, reason, this_report, per_model, steps)
    for uniform in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE):
        if all(v == uniform for v in verdicts):
            details = [f"{label}: {v.reason}" for label, v in steps.items() if v.reason]
            return Verdict(uniform, "; ".join(details), this_report, per_model, steps)
    reason = "; ".join(f"{label}: {v.label}" for label, v in steps.items())
    return Verdict(PARTLY, reason, this_report, per_model, steps)


def _selected_rows(rule: dict, results_dir: str | Path, cache: dict | None, columns) -> pd.DataFrame:
    """The rows of the rule's results file that its ``where`` selects, with ``columns`` checked;
    :class:`NotRun` (naming the filter and the file) when there are none."""
    results, where = rule["results"], rule.get("where") or {}
    table = _read(Path(results_dir), results, cache)
    _require_columns(table, [*where, *columns], results)
    rows = select(table, where)
    if not len(rows):
        raise NotRun(f"no rows for {_describe_filter(where)} in {results}")
    return rows


def evaluate_within(rule: dict, results_dir: str | Path, cache: dict | None = None) -> Verdict:
    """A ``within`` rule (module docstring): per model the largest value of ``metric`` over the
    selected rows against the tolerance ``at_most``."""
    metric, at_most = rule["metric"], float(rule["at_most"])
    try:
        rows = _selected_rows(rule, results_dir, cache, [metric])
    except NotRun as why:
        return Verdict(NOT_RUN, str(why))
    per_model, lines = {}, []
    for model, group in _by_model(rows).items():
        values, _ = _values(group, metric, False)
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        largest = float(values.max())
        outcome = "for" if largest <= at_most else "against"
        per_model[model] = {"value": largest, "n": int(values.size), "outcome": outcome}
        lines.append(f"{model}: largest {metric} {largest:.2g} (tolerance {at_most:g}), n={values.size}")
    if not per_model:
        return Verdict(NOT_RUN, f"no values of {metric} for {_describe_filter(rule.get('where') or {})}")
    verdict, detail = _combine({m: d["outcome"] for m, d in per_model.items()})
    detail = detail.replace("in the paper's direction", "within the tolerance").replace(
        "reversed", "above the tolerance"
    )
    return Verdict(verdict, detail, "; ".join(lines), per_model)


def evaluate_absolute(rule: dict, results_dir: str | Path, cache: dict | None = None) -> Verdict:
    """An ``absolute`` rule: this report's mean per model with its 95 % interval (Wilson for a
    right/wrong metric, :func:`gradcam_core.statistics.proportion_ci`; else the bootstrap
    interval of the mean, i.e. :func:`gradcam_core.statistics.paired_difference` against 0) or,
    with ``metric_b``, the paired difference of the two columns; verdict "not testable here"."""
    reason = rule.get("reason", ABSOLUTE_REASON)
    metric = rule["metric"]
    metric_b = rule.get("metric_b")
    scale = rule.get("scale", 1)
    try:
        rows = _selected_rows(rule, results_dir, cache, [metric, *([metric_b] if metric_b else [])])
    except NotRun as why:
        return Verdict(NOT_RUN, str(why))
    per_model, lines = {}, []
    for model, group in _by_model(rows).items():
        values, binary = _values(group, metric, rule.get("as_error", False))
        if metric_b:
            other, _ = _values(group, metric_b, rule.get("as_error", False))
            complete = np.isfinite(values) & np.isfinite(other)
            if not complete.any():
                continue
            difference = statistics.paired_difference(values, other, seed=0)
            a, b = float(values[complete].mean()), float(other[complete].mean())
            per_model[model] = {"a": a, "b": b, "difference": difference}
            lines.append(
                f"{model}: {metric} {_fmt(a, scale)} vs {metric_b} {_fmt(b, scale)}, diff "
                f"{_fmt_interval(difference, scale)}, n={difference.n}"
            )
            continue
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        if binary:
            low, high = statistics.proportion_ci(int(values.sum()), values.size)
        else:
            interval = statistics.paired_difference(values, np.zeros_like(values), seed=0)
            low, high = interval.low, interval.high
        value = float(values.mean())
        per_model[model] = {"value": value, "low": low, "high": high, "n": int(values.size)}
        lines.append(
            f"{model}: "
            f"{statistics.format_interval(scale * value, scale * low, scale * high, _digits(scale))}, "
            f"n={values.size}"
        )
    if not per_model:
        return Verdict(NOT_RUN, f"no values of {metric} for {_describe_filter(rule.get('where') or {})}")
    return Verdict(NOT_TESTABLE, reason, "; ".join(lines), per_model)


def evaluate(claim: dict, results_dir: str | Path, cache: dict | None = None) -> Verdict:
    """The :class:`Verdict` of one registry claim from the results files under ``results_dir``
    (its rule, as the module docstring describes). ``cache`` (a dict) keeps the files read so
    that claims on the same file read it once."""
    rule = claim["rule"]
    kind = rule["type"]
    if kind == "not_run":
        return Verdict(NOT_RUN, rule["reason"])
    if kind == "not_testable":
        return Verdict(NOT_TESTABLE, rule["reason"])
    evaluator = {
        "ordering": evaluate_ordering,
        "chain": evaluate_chain,
        "within": evaluate_within,
        "absolute": evaluate_absolute,
    }[kind]
    return evaluator(rule, results_dir, cache)


def paper_text(claim: dict) -> str:
    """The paper's (or, for an extension, the seed's) numbers with their model and data set."""
    paper = claim["paper"]
    return f"{paper['numbers']} ({paper['model']}; {paper['dataset']})"


def verdict_table(
    results_dir: str | Path, claims: list[dict] | None = None, read: dict | None = None
) -> pd.DataFrame:
    """One row per claim (the registry's, unless ``claims`` is given): its id, kind, paper
    section, the claim in one sentence, the paper's numbers, this report's, the verdict (with
    its reason) and the page that shows it (a book docname). Empty text where there is none.
    ``read``: results tables already read, by the rule's ``results`` name (a page's own run,
    written to a folder of another name, judges its claims on its own files)."""
    claims = load_claims() if claims is None else claims
    cache: dict = dict(read or {})
    rows = []
    for claim in claims:
        verdict = evaluate(claim, results_dir, cache)
        rows.append(
            {
                "claim": claim["id"],
                "kind": claim["kind"],
                "section": claim["section"],
                "statement": claim["claim"],
                "paper": paper_text(claim),
                "this report": verdict.this_report,
                "verdict": verdict.label,
                "link": claim["link"],
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).fillna("")


#: The columns of :func:`effects_table`.
EFFECT_COLUMNS = ("claim", "label", "model", "estimate", "low", "high", "paper", "unit", "kind")


#: How a metric's difference reads on the forest plot's axis.
UNIT_NAMES = {
    "spearman": "Spearman correlation with occlusion",
    "ratio_inside": "share of activated pixels in the box",
    "contrastivity": "contrastivity",
    "spearman_abs": "Spearman correlation with the trained model's map",
    "deletion_auc": "AUC (deletion, insertion)",
    "insertion_auc": "AUC (deletion, insertion)",
}


def _unit(rule: dict) -> str:
    if rule.get("scale", 1) == 100:
        return "percentage points"
    return UNIT_NAMES.get(rule["metric"], rule["metric"].replace("_", " "))


def effects_table(results_dir: str | Path, claims: list[dict] | None = None) -> pd.DataFrame:
    """The forest plot's rows: per ordering claim (per step of a chain) and model, this
    report's paired difference ``a - b`` with its 95 % interval, scaled as the claim's rule says,
    beside the paper's ``a - b`` (``paper.effect`` in the registry; NaN where it gives none).
    Claims that were not run, are not testable or state absolute values have no row."""
    claims = load_claims() if claims is None else claims
    cache: dict = {}
    rows = []
    for claim in claims:
        rule = claim["rule"]
        if rule["type"] not in ("ordering", "chain"):
            continue
        verdict = evaluate(claim, results_dir, cache)
        if rule["type"] == "ordering":
            parts = [(claim["id"], verdict.per_model, claim["paper"].get("effect"), rule)]
        else:
            effects = claim["paper"].get("effect") or [None] * len(rule["steps"])
            parts = [
                (
                    f"{claim['id']}: {step_label(step)}",
                    verdict.steps[step_label(step)].per_model if step_label(step) in verdict.steps else {},
                    effect,
                    step,
                )
                for step, effect in zip(chain_steps(rule), effects)
            ]
        for label, per_model, paper, step in parts:
            scale = step.get("scale", 1)
            for model, numbers in per_model.items():
                difference = numbers["difference"]
                rows.append(
                    {
                        "claim": claim["id"],
                        "label": label,
                        "model": model,
                        "estimate": scale * difference.mean,
                        "low": scale * difference.low,
                        "high": scale * difference.high,
                        "paper": np.nan if paper is None else float(paper),
                        "unit": _unit(step),
                        "kind": claim["kind"],
                    }
                )
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))
