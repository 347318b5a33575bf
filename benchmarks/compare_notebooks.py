"""Every printed number of executed notebooks against the committed ones, cell by cell: how a run
on another device (a GPU, where cuDNN is not bit-exact) differs from the committed CPU outputs.

    python benchmarks/compare_notebooks.py notebooks/ results/gpu/notebooks/ [--rtol 0.02]

For each notebook in both folders and each code cell whose outputs nbval compares (not tagged
``nbval-ignore-output``), the text outputs (streams, plain text, Markdown and HTML, as nbval
sanitises them: progress bars removed) are split into numbers and the words between them. The
words must be the same (otherwise the cell is listed as a text difference: a verdict or a label
changed); numbers agree when ``|a - b| <= max(rtol * |b|, 2 units of the last printed digit of
b)``, the committed value ``b`` printed as the page rounds it. Every disagreement is listed with
its cell, the words before it and both values. Differences are listed, not judged: the exit
status is 0 unless a committed notebook was not executed, or its executed copy is unreadable,
failed or stopped (as papermill records), or its cells do not correspond (the cell papermill
injects with the parameters aside); such a notebook is listed and the others compared. Tables
count twice (their HTML and plain text).
"""

from __future__ import annotations

import argparse
import configparser
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
TEXT_TYPES = ("text/plain", "text/markdown", "text/html")


def sanitisers(config: Path = ROOT / "nbval_sanitize.cfg") -> list[tuple[re.Pattern, str]]:
    """The project's nbval sanitisers (progress bars), applied before comparing."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    return [
        (re.compile(parser[section]["regex"]), parser[section]["replace"]) for section in parser.sections()
    ]


def cell_text(cell: dict, rules) -> str:
    """A code cell's text outputs as nbval compares them."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append("".join(output.get("text", "")))
        for kind in TEXT_TYPES:
            value = output.get("data", {}).get(kind)
            if value is not None:
                text = "".join(value)
                parts.append(html.unescape(re.sub(r"<[^>]+>", " ", text)) if kind == "text/html" else text)
    text = "\n".join(parts)
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def split_numbers(text: str) -> tuple[list[str], list[str]]:
    """``text`` as its numbers (as printed) and the words around them (whitespace collapsed)."""
    numbers = NUMBER.findall(text)
    words = [" ".join(w.split()) for w in NUMBER.split(text)]
    return numbers, words


def value(number: str) -> float:
    return float(number.replace(",", ""))


def last_digit(number: str) -> float:
    """One unit of the last printed digit: 0.01 for "0.35", 1 for "48", 1e-5 for "1.2e-04"."""
    mantissa, _, exponent = number.replace(",", "").lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def agree(committed: str, other: str, rtol: float) -> bool:
    b, a = value(committed), value(other)
    return abs(a - b) <= max(rtol * abs(b), 2 * last_digit(committed)) * (1 + 1e-9)  # decimal rounding


def _compared_cells(notebook: dict) -> list[dict]:
    """The cells of a notebook less the one papermill injects with a run's parameters."""
    return [c for c in notebook["cells"] if "injected-parameters" not in c["metadata"].get("tags", [])]


@dataclass
class Difference:
    notebook: str
    cell: int
    kind: str  # "number" or "text"
    context: str
    committed: str
    other: str


class NotCompared(ValueError):
    """An executed copy that cannot be compared: unreadable, its execution failed or stopped
    (papermill marks the notebook and its cells), or its cells do not correspond to the committed
    notebook's. The message says which."""


def _execution_failed(notebook: dict) -> bool:
    """Whether papermill recorded an exception, or a code cell it did not complete (a run killed
    at its time limit keeps the cells it had not reached "pending")."""
    if notebook.get("metadata", {}).get("papermill", {}).get("exception"):
        return True
    return any(
        cell["metadata"].get("papermill", {}).get("status", "completed") != "completed"
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    )


def compare_notebook(committed: Path, other: Path, rtol: float, rules) -> tuple[int, list[Difference]]:
    """Numbers compared and the differences of one notebook's executed copy ``other``; raises
    :class:`NotCompared` for a copy that cannot be compared."""
    mine = json.loads(committed.read_text())
    try:
        theirs = json.loads(other.read_text())
        cells, other_cells = _compared_cells(mine), _compared_cells(theirs)
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as error:
        raise NotCompared(f"not a readable notebook ({type(error).__name__})") from error
    if _execution_failed(theirs):
        raise NotCompared("its execution failed or stopped (see its log)")
    if [c["cell_type"] for c in cells] != [c["cell_type"] for c in other_cells]:
        raise NotCompared("its cells do not correspond to the committed notebook's")
    compared, differences = 0, []
    for index, (cell, other_cell) in enumerate(zip(cells, other_cells)):
        if cell["cell_type"] != "code" or "nbval-ignore-output" in cell["metadata"].get("tags", []):
            continue
        numbers, words = split_numbers(cell_text(cell, rules))
        other_numbers, other_words = split_numbers(cell_text(other_cell, rules))
        if words != other_words:
            first = next(
                (i for i, (w, o) in enumerate(zip(words, other_words)) if w != o),
                min(len(words), len(other_words)),
            )
            differences.append(
                Difference(
                    committed.name,
                    index,
                    "text",
                    words[first - 1][-40:] if first else "",
                    (words[first] if first < len(words) else "")[:60],
                    (other_words[first] if first < len(other_words) else "")[:60],
                )
            )
            continue
        for i, (b, a) in enumerate(zip(numbers, other_numbers)):
            compared += 1
            if not agree(b, a, rtol):
                differences.append(Difference(committed.name, index, "number", words[i][-40:], b, a))
    return compared, differences


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("committed", type=Path, help="folder of the committed notebooks")
    parser.add_argument("other", type=Path, help="folder of the same notebooks executed elsewhere")
    parser.add_argument("--rtol", type=float, default=0.02, help="relative tolerance (default 2 %%)")
    args = parser.parse_args(argv)
    rules = sanitisers()
    committed_notebooks = sorted(args.committed.glob("*.ipynb"))
    missing = [c.name for c in committed_notebooks if not (args.other / c.name).is_file()]
    total, listed, failed = 0, [], []
    print("| notebook | numbers compared | differ beyond the tolerance | cells whose words differ |")
    print("|---|---:|---:|---:|")
    for committed in committed_notebooks:
        other = args.other / committed.name
        if not other.is_file():
            continue
        try:
            compared, differences = compare_notebook(committed, other, args.rtol, rules)
        except NotCompared as reason:
            print(f"| {other.name} | not compared: {reason} | | |")
            failed.append(other.name)
            continue
        numbers = sum(d.kind == "number" for d in differences)
        print(f"| {other.name} | {compared} | {numbers} | {len(differences) - numbers} |")
        total += compared
        listed += differences
    print(
        f"\n{total} numbers compared; tolerance max({args.rtol:g} x |committed|, 2 units of its last digit)"
    )
    if listed:
        print("\n| notebook | cell | what | printed before it | committed (CPU) | this run |")
        print("|---|---:|---|---|---|---|")
        for d in listed:
            context = d.context.replace("|", "/")
            print(f"| {d.notebook} | {d.cell} | {d.kind} | {context} | {d.committed} | {d.other} |")
    if missing:
        print(f"\nnot executed in {args.other}: {', '.join(missing)}", file=sys.stderr)
    if failed:
        print(f"\nnot compared: {', '.join(failed)}", file=sys.stderr)
    return 1 if missing or failed else 0


if __name__ == "__main__":
    sys.exit(main())
