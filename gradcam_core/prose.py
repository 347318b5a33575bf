"""Computed prose for the book's pages: every number a page states in its text is glued from the
computation (myst-nb's ``glue``), so a rerun updates the text and nbval guards it.

- :func:`glue_text` / :func:`glue_figure`: a sentence or a figure, pasted into a page's Markdown
  with ``{glue:md}`key``` or a ``{glue:figure}`` directive (numbered, captioned);
- :func:`findings` / :func:`glue_findings`: the verdicts of the claims a page tests
  (:mod:`gradcam_core.claims`), as the sentences that open and close the page;
- :func:`show_tables_plainly`: tables rendered without pandas' row index and with "n/a" for a
  missing value (the book shows no "NaN").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import claims

#: Shown for a missing value; each table that can have one says why under it.
MISSING = "n/a"


def glue_text(name: str, text: str) -> str:
    """Glue ``text`` (Markdown) under ``name`` without displaying it; returns ``text``."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, Markdown(text), display=False)
    return text


def glue_figure(name: str, figure, empty_message: str = "nothing to show") -> None:
    """Glue a matplotlib ``figure`` (or a list of figures, stacked top to bottom as one image;
    ``None`` entries skipped) under ``name``, where a ``{glue:figure}`` directive gives it its
    number and caption; the figures are closed so that none is shown a second time. A list with
    no figure glues a small figure that says ``empty_message``."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    if not isinstance(figure, list | tuple):
        glue(name, figure, display=False)
        plt.close(figure)
        return
    drawn = [f for f in figure if f is not None]
    if not drawn:
        empty, ax = plt.subplots(figsize=(6, 0.8))
        ax.axis("off")
        ax.text(0.5, 0.5, empty_message, ha="center", va="center")
        drawn = [empty]
    glue(name, _stacked_png(drawn), display=False)
    for f in drawn:
        plt.close(f)


def _stacked_png(figures_: list):
    """The figures rendered at one resolution and stacked vertically, as a PNG image object."""
    import io

    from IPython.display import Image as PngImage
    from PIL import Image

    images = []
    for figure in figures_:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", facecolor="white")
        images.append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    width = max(image.width for image in images)
    stacked = Image.new("RGB", (width, sum(image.height for image in images)), "white")
    top = 0
    for image in images:
        stacked.paste(image, ((width - image.width) // 2, top))
        top += image.height
    out = io.BytesIO()
    stacked.save(out, format="png")
    return PngImage(data=out.getvalue(), format="png")


def note(text: str):
    """``text`` (Markdown) as a paragraph of the page: computed sentences a notebook once
    printed, so they wrap with the text column instead of running off it."""
    from IPython.display import Markdown

    return Markdown(text)


def findings(page: str, output_dir: str | Path, registry: list[dict] | None = None) -> str:
    """The verdicts of the registry's claims shown on ``page`` (a book docname such as
    ``notebooks/01_localization``) as a Markdown list: the claim, its verdict and this report's
    numbers, computed from the results files of the page's run in ``output_dir`` (e.g.
    ``results/01_localization``, or a full-profile run's own folder) and, for files of other
    notebooks, from ``output_dir``'s parent."""
    registry = claims.load_claims() if registry is None else registry
    mine = [c for c in registry if c["link"] == page]
    if not mine:
        raise ValueError(f"no claim in the registry links to page {page!r}")
    output_dir = Path(output_dir)
    own = {}
    for claim in mine:
        results = claim["rule"].get("results")
        if results and Path(results).parts[0] != output_dir.name:
            path = output_dir / Path(*Path(results).parts[1:])
            if path.is_file():  # the page's run wrote it under another folder name
                own[results] = pd.read_csv(path)
    table = claims.verdict_table(output_dir.parent, mine, read=own)
    lines = []
    for row in table.to_dict("records"):
        numbers = f" This report: {row['this report']}." if row["this report"] else ""
        lines.append(
            f"- **{row['claim']}** ({row['section']}): {row['statement']} "
            f"**Verdict: {row['verdict']}.**{numbers}"
        )
    return "\n".join(lines)


def _bare_verdicts(verdicts: pd.DataFrame) -> pd.Series:
    """The verdict column without the reasons in brackets ("partly reproduced (...)")."""
    return verdicts["verdict"].str.replace(r" \(.*", "", regex=True)


def verdict_counts(verdicts: pd.DataFrame, kind: str) -> str:
    """How many claims of ``kind`` ("paper", "extension" or "later-work") in a verdict table
    (:func:`gradcam_core.claims.verdict_table`) got each verdict, as text: "3 reproduced,
    2 partly reproduced, 1 not run"."""
    mine = verdicts[verdicts["kind"] == kind]
    if mine.empty:
        raise ValueError(f"no claim of kind {kind!r} in the verdict table")
    counts = _bare_verdicts(mine).value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in claims.VERDICTS if v in counts)


def claims_by_verdict(verdicts: pd.DataFrame, kind: str) -> str:
    """The ids of the claims of ``kind`` grouped by verdict, as Markdown: "**reproduced**: A, B;
    **not run**: C" (verdicts in the registry's order)."""
    mine = verdicts[verdicts["kind"] == kind]
    plain = _bare_verdicts(mine)
    groups = [
        f"**{verdict}**: {', '.join(mine.loc[plain == verdict, 'claim'])}"
        for verdict in claims.VERDICTS
        if (plain == verdict).any()
    ]
    return "; ".join(groups)


def glue_findings(name: str, page: str, output_dir: str | Path) -> str:
    """:func:`findings` glued under ``name`` (pasted at the top of the page)."""
    return glue_text(name, findings(page, output_dir))


_COUNT_NAMES = {
    "sanity_images": "images per model in the cascade",
    "deletion_images": "in deletion and insertion",
    "deletion_score_cam_images": "for Score-CAM in deletion and insertion",
    "score_cam_images": "for Score-CAM in the localisation and pointing game",
}


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{value} {_COUNT_NAMES.get(name, name)}" for name, value in counts.items())


def _hardware(machine: dict) -> str:
    return machine["gpu"] if machine["gpu"] != "none" else f"{machine['cpu_count']} CPU cores, no GPU"


def _made_text(description: dict) -> str:
    """When, at which commit and on what a published run was made: once, or part by part (a run
    re-made part by part, :func:`gradcam_core.results.carried_parts`)."""
    makes = {}
    for part, made in description.get("parts", {}).items():
        makes.setdefault((made["date"], made["commit"], _hardware(made["machine"])), []).append(part)
    if len(makes) < 2:
        return (
            f"on {description['date']}, at commit `{description['commit']}` "
            f"({_hardware(description['machine'])})"
        )
    return "part by part: " + "; ".join(
        f"{', '.join(f'`{part}`' for part in parts)} on {date} at commit `{commit}` ({hardware})"
        for (date, commit, hardware), parts in sorted(makes.items())
    )


def sweep_sample_text(check: pd.DataFrame, threshold: float) -> str:
    """Where Task 1's threshold sweep ran, from :func:`gradcam_core.tables.sweep_sample_check`:
    on every image, or on a sample, and then whether the sample's error at the headline
    ``threshold`` lies within each method's interval on all images."""
    if check.empty:
        return "No method was boxed at a threshold, so there is no sweep."
    sample, everything = int(check["sample images"].max()), int(check["all images"].max())
    if sample == everything:
        return (
            f"The sweep and the threshold tuning ran on every image of this run ({everything:,} per model)."
        )
    outside = check[~check["within"]]
    verdict = (
        f"every method's top-1 localisation error at {threshold:.0%} on all {everything:,} images lies "
        f"within the 95 % interval of its error on the sample, so the sample stands for them"
        if outside.empty
        else f"for {len(outside)} of the {len(check)} rows the error at {threshold:.0%} on all images lies "
        f"outside the 95 % interval of the sample's ({', '.join(outside['model'] + ' ' + outside['method'])})"
        f": "
        f"read the sweep and the tuned thresholds of those rows with care"
    )
    return (
        f"The sweep and the threshold tuning ran on the first {sample:,} images of each model "
        f"(`sweep_images`); the {threshold:.0%} rows and the headline use all {everything:,}; {verdict} "
        f"(table below)."
    )


def _verdict_word(passes) -> str:
    return "pass" if passes else "fail"


def verdicts_across_models_text(verdicts: pd.DataFrame) -> str:
    """Which methods' sanity verdicts (:func:`gradcam_core.tasks.sanity.sanity_verdicts`, the
    last step of the cascade, Adebayo et al. 2018 Sec. 3) agree across the models and which
    depend on the model; methods without a verdict on every model are left out."""
    judged = verdicts.dropna(subset=["passes"])
    models = judged["model"].drop_duplicates().tolist()
    if len(models) < 2:
        return "One model only: there is nothing to compare across models."
    wide = judged.pivot_table(index="method", columns="model", values="passes", aggfunc="first", sort=False)
    wide = wide.dropna()[models]
    groups: dict[tuple, list[str]] = {}
    for method, row in wide.iterrows():
        groups.setdefault(tuple(bool(v) for v in row), []).append(method)
    every = "both" if len(models) == 2 else "all"
    same = [
        f"{', '.join(methods)} ({_verdict_word(outcome[0])} on {every})"
        for outcome, methods in groups.items()
        if len(set(outcome)) == 1
    ]
    differ = [
        f"{' and '.join(methods)} ("
        + ", ".join(f"{_verdict_word(v)} on {m}" for m, v in zip(models, outcome))
        + ")"
        for outcome, methods in groups.items()
        if len(set(outcome)) > 1
    ]
    text = f"The verdicts agree on the {len(models)} models for " + "; ".join(same) + "." if same else ""
    if differ:
        text += (
            f" They depend on the model for {'; '.join(differ)}: a verdict at the last step holds for "
            f"the model it was measured on, not for the method in general."
        )
    else:
        text += " No verdict depends on the model."
    return text.strip()


#: The reference orders of deletion and insertion, as the chapter names them.
REFERENCE_ORDERS = {"random": "the random order", "centre": "centre-first"}


def reference_orders_text(summary: pd.DataFrame, method: str = "grad-cam", label: str = "Grad-CAM") -> str:
    """Whether deletion and insertion tell ``method`` from the trivial reference orders
    (Petsiuk et al. 2018 judge a map against such orders), from
    :func:`gradcam_core.tasks.deletion.deletion_summary`, whose reference rows hold their paired
    difference from ``method``'s AUC on the same images: a test tells them apart on a model only
    when the 95 % interval of that difference excludes 0 on the better side (a lower deletion AUC,
    a higher insertion AUC for ``method``). Where it does not, a low deletion AUC says no more
    than a trivial order does. ``label``: the method as the page names it."""
    references = summary[summary["method"].isin(REFERENCE_ORDERS)]
    if references.empty or method not in set(summary["method"]):
        return f"No reference order ran beside {label}, so there is nothing to tell it from."
    fails, passes = [], []
    for r in references.to_dict("records"):
        for curve, sign in (("deletion", 1), ("insertion", -1)):  # reference minus method: > 0 is worse
            low, high = sign * r[f"{curve}_diff_low"], sign * r[f"{curve}_diff_high"]
            if min(low, high) > 0:
                passes.append((r["model"], curve))
                continue
            mine = summary[(summary["model"] == r["model"]) & (summary["method"] == method)].iloc[0]
            fails.append(
                f"on {r['model']}, {REFERENCE_ORDERS[r['method']]}'s {curve} AUC is {r[curve]} against "
                f"{label}'s {mine[curve]} (difference {r[f'{curve}_diff']:+.3f}, 95 % interval "
                f"{r[f'{curve}_diff_low']:+.3f} to {r[f'{curve}_diff_high']:+.3f})"
            )
    models = references["model"].drop_duplicates().tolist()
    if not fails:
        return (
            f"On {' and '.join(models)}, {label}'s deletion and insertion AUCs both beat the random and "
            f"centre-first orders (paired 95 % intervals exclude 0): the test tells {label} from a "
            f"trivial order."
        )
    return (
        f"Deletion and insertion do not always tell {label} from a trivial order: {'; '.join(fails)}. "
        f"There the interval includes 0 or favours the reference order, so the AUC says no more about "
        f"{label}'s faithfulness than the fixed order's does. The other {len(passes)} of "
        f"{len(passes) + len(fails)} comparisons with a reference order favour {label}."
    )


def published_run_text(published, agreement: pd.DataFrame | None, counts: dict) -> str:
    """What a page's tables rest on: its own run (``published`` None; ``counts`` its image
    counts), or a published full-count run (a :class:`gradcam_core.results.PublishedRun`) and
    how this page's recomputation with ``counts`` agreed with it (``agreement``, from
    :func:`gradcam_core.results.check_published_run`)."""
    if published is None:
        return f"The tables, figures and verdicts of this page rest on its own run: {_counts_text(counts)}."
    shown = {name: published.parameters[name] for name in counts}
    largest = agreement["largest difference"].max()
    return (
        f"The tables, figures and verdicts of this page rest on a **published run** with more images than "
        f"the page's default can afford in CI: {_counts_text(shown)}. The page ran it with larger "
        f"counts (`make full-runs`), in {published.minutes:.0f} minutes of computing in all, "
        f"{_made_text(published.description)}; its per-image "
        f"files are committed in `{published.folder.parent.name}/{published.folder.name}` under `data/`. "
        f"So that those numbers cannot drift silently, this page recomputes its first images with the "
        f"default counts ({_counts_text(counts)}) and checks every recomputed row against the published "
        f"one: {int(agreement['found'].sum())} rows agree (the largest difference {largest:.0e}, within "
        f"the check's {agreement.attrs['tolerance']:.0e}); any disagreement, or a change of "
        f"method, step or seed, stops the page with the file, the row and both values."
    )


def plain_html(table: pd.DataFrame) -> str:
    """``table`` as HTML without pandas' row index (a named or non-default index becomes the
    first columns) and with :data:`MISSING` for a missing value."""
    if not isinstance(table.index, pd.RangeIndex) or any(table.index.names):
        table = table.reset_index()
    return table.to_html(index=False, na_rep=MISSING, border=0, classes="report-table")


def show_tables_plainly() -> None:
    """Render every DataFrame a notebook cell returns with :func:`plain_html` (an IPython
    display formatter; nothing happens outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, plain_html)
