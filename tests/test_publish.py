"""`make publish` end to end, into a throwaway remote: a clone of this repository renders the book and
pushes it with ghp-import to the ``gh-pages`` branch of a local bare repository (``PUBLISH_REMOTE``).

The clone gets the working tree's uncommitted changes on top (modified and new files, deletions), so
the test checks the Makefile and book configuration as they are, not only as last committed. It
uses this session's virtualenv (``VENV=``) and a stamp file that is up to date (``STAMP=``), so
nothing is installed; this repository's own branches are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent  # the virtualenv running the tests (make test: .venv)

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("make") is None or not (ROOT / ".git").exists(),
    reason="needs git, make and a git checkout",
)


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def overlay_working_tree(clone: Path) -> None:
    """Copy this checkout's modified and untracked (not ignored) files into ``clone`` and remove
    the files deleted here, so that the clone is the working tree as it is."""
    changed = git("ls-files", "-z", "--modified", "--others", "--exclude-standard").split("\0")
    deleted = set(git("ls-files", "-z", "--deleted").split("\0"))
    for name in filter(None, changed):
        target = clone / name
        if name in deleted:
            target.unlink(missing_ok=True)
        elif (ROOT / name).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)


def test_make_publish_pushes_the_book_to_a_gh_pages_branch(tmp_path):
    assert (VENV / "bin" / "ghp-import").exists(), "no ghp-import: pip install -r requirements-dev.txt"
    refs_before = git("for-each-ref", "--format=%(refname) %(objectname)")
    remote, clone = tmp_path / "remote.git", tmp_path / "clone"
    git("init", "-q", "--bare", str(remote))
    git("clone", "-q", str(ROOT), str(clone))
    overlay_working_tree(clone)
    stamp = tmp_path / "installed"  # "installed": newer than the clone's requirements files
    stamp.touch()
    os.utime(stamp, (time.time() + 3600, time.time() + 3600))
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(GIT_COMMITTER_NAME="publish test", GIT_COMMITTER_EMAIL="publish-test@example.invalid")

    command = ["make", "publish", f"VENV={VENV}", f"STAMP={stamp}", f"PUBLISH_REMOTE={remote}"]

    def publish():
        return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=900)

    refused = publish()  # a fresh clone has no results/: its pages' CSV links would be dead
    assert refused.returncode != 0 and "no results/ folder" in refused.stderr, refused.stderr[-2000:]
    assert "gh-pages" not in git("branch", "--list", cwd=remote)
    results = clone / "results" / "02_pointing_game"
    results.mkdir(parents=True)
    (results / "per_image.csv").write_text("model,image,hit\nm,a.JPEG,True\n")
    result = publish()

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "pip install" not in result.stdout  # the stamp held: nothing was installed
    files = set(git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split())
    assert {"index.html", ".nojekyll", "book/intro.html", "notebooks/01_localization.html"} <= files
    assert "_static/report.css" in files and "_static/mathjax/tex-chtml.js" in files
    assert "results/02_pointing_game/per_image.csv" in files  # the CSV the page links
    assert "The book, built from commit" in git("log", "-1", "--format=%s", "gh-pages", cwd=remote)
    assert git("for-each-ref", "--format=%(refname) %(objectname)") == refs_before
