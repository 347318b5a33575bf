"""Sphinx extension of the report's book: a provenance stamp on every page, results CSVs shipped.

* ``html-page-context``: appends ``<p class="build-stamp">`` to each page's article body, saying
  when the stored outputs were computed (a notebook's ``metadata.papermill.end_time``) and at which
  commit the page's source was last changed (``git log -1 --format="%h %cs" -- <source>``; for a
  notebook that is the commit that stored its outputs). Without git, or for a file git does not
  know, the stamp says "uncommitted"; a committed file with local changes says so too.
* ``build-finished``: copies every ``results/**/*.csv`` (CSV only, not the study images) into
  ``<outdir>/results/`` so that pages can link them as ``../results/<task>/<file>.csv``
  (:func:`gradcam_core.report.download_links`). Without ``results/`` there is nothing to copy
  (and no warning); a copy left by an earlier build is removed in both cases.

Wired in ``_config.yml`` as ``sphinx: local_extensions: {report_stamp: book/_ext}``.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

RESULTS_DIR = "results"


@cache
def git_stamp(path: Path) -> str:
    """``"source at commit <hash> (<date>)"`` for ``path``, or ``"uncommitted"`` where git cannot say."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=path.parent, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    last = git("log", "-1", "--format=%h %cs", "--", path.name)
    if not last:
        return "source uncommitted"
    commit, date = last.split(maxsplit=1)
    stamp = f"source at commit {commit} ({date})"
    if git("status", "--porcelain", "--", path.name):
        stamp += ", with uncommitted changes"
    return stamp


def papermill_date(path: Path) -> str | None:
    """The date (YYYY-MM-DD) a notebook's papermill run ended, from its metadata, if recorded."""
    if path.suffix != ".ipynb":
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return None
    end_time = (metadata.get("papermill") or {}).get("end_time")
    return str(end_time)[:10] if end_time else None


def stamp_text(path: Path) -> str:
    """The stamp's sentence for one source file."""
    source = git_stamp(path)
    computed = papermill_date(path)
    if computed:
        return f"Outputs computed {computed} (papermill run) · {source}"
    return source[0].upper() + source[1:]


def add_stamp(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if doctree is None or pagename not in app.env.all_docs or "body" not in context:
        return
    path = Path(app.env.doc2path(pagename))
    context["body"] += f'\n<p class="build-stamp">{html.escape(stamp_text(path))}</p>\n'


def copy_results_csvs(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = Path(app.srcdir) / RESULTS_DIR, Path(app.outdir) / RESULTS_DIR
    shutil.rmtree(target, ignore_errors=True)  # the copy mirrors results/: no stale CSVs of an earlier build
    if not source.is_dir():
        return
    copied = 0
    for csv in sorted(source.rglob("*.csv")):
        destination = target / csv.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(csv, destination)
        copied += 1
    logger.info(f"report_stamp: copied {copied} results CSV file(s) to {target}")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", lambda app: git_stamp.cache_clear())  # fresh per build (autobuild)
    app.connect("html-page-context", add_stamp)
    app.connect("build-finished", copy_results_csvs)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
