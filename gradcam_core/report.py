"""Helpers for the book's pages: links to a page's results files (:func:`download_links`).

The book's build copies every ``results/**/*.csv`` into ``_build/html/results/`` (the local Sphinx
extension ``book/_ext/report_stamp.py``), so a page ``notebooks/<name>.html`` or ``book/<name>.html``
reaches them at ``../results/<task>/<file>.csv``.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from IPython.display import HTML

#: The folder, at the repository root and in the built book, that holds the results files.
RESULTS_DIR = "results"


def download_links(output_dir: str | Path, page_depth: int = 1, sizes: bool = True) -> HTML:
    """A list of links to the CSV files in ``output_dir`` (a results folder such as
    ``../results/01_localization``, subfolders included), each with its size in kB, for display
    as a notebook cell's output.

    The links are relative to the built page: ``"../" * page_depth`` up to the book's root, then
    ``results/`` and the file's path below the last ``results`` folder of ``output_dir``; pages
    under ``notebooks/`` and ``book/`` have ``page_depth=1``. A folder not under a ``results``
    folder, or one without CSV files, gets a line saying so instead of links. ``sizes=False``
    leaves the sizes out (they change from run to run, e.g. for a notebook checked by nbval).
    The object is HTML (``text/html``), which the book renders as it is: Markdown links would be
    resolved, and warned about, as cross-references by MyST.
    """
    if page_depth < 0:
        raise ValueError(f"page_depth must be 0 or more, got {page_depth}")
    folder = Path(output_dir)
    where = f"<code>{html.escape(str(folder))}</code>"
    csvs = sorted(path for path in folder.rglob("*.csv") if path.is_file()) if folder.is_dir() else []
    if not csvs:
        return HTML(f'<p class="results-downloads">No CSV results files in {where}.</p>')
    names = [path.relative_to(folder).as_posix() for path in csvs]
    parts = folder.resolve().parts
    if RESULTS_DIR not in parts:
        listed = ", ".join(f"<code>{html.escape(name)}</code>" for name in names)
        return HTML(
            f'<p class="results-downloads">CSV results files in {where} '
            f"(not in a <code>{RESULTS_DIR}/</code> folder, so not linked): {listed}.</p>"
        )
    below = parts[len(parts) - parts[::-1].index(RESULTS_DIR) :]  # the path after the last "results"
    prefix = "../" * page_depth + "/".join((RESULTS_DIR, *below)) + "/"
    items = []
    for path, name in zip(csvs, names):
        href = html.escape(quote(prefix + name), quote=True)
        size = max(path.stat().st_size / 1000, 0.1)
        shown_size = f' <span class="csv-size">({size:,.1f} kB)</span>' if sizes else ""
        items.append(f'<li><a href="{href}" download><code>{html.escape(name)}</code></a>{shown_size}</li>')
    return HTML(
        '<div class="results-downloads"><p>Results files of this page (CSV):</p>\n<ul>\n'
        + "\n".join(items)
        + "\n</ul></div>"
    )
