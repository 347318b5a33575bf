"""The book's page helpers: links to a results folder's CSV files (gradcam_core.report), and the
book's Sphinx extension (book/_ext/report_stamp.py): the provenance stamp and the CSVs' copy."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from IPython.display import HTML

from gradcam_core.report import download_links

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def results_folder(tmp_path) -> Path:
    folder = tmp_path / "results" / "01_localization"
    (folder / "study").mkdir(parents=True)
    (folder / "per_image.csv").write_text("a\n" * 1250)  # 2500 bytes
    (folder / "run times.csv").write_text("x\n")
    (folder / "study" / "stimuli.csv").write_text("s\n" * 600)
    (folder / "study" / "0001.png").write_bytes(b"\x89PNG")
    return folder


def links(shown: HTML) -> list[tuple[str, str]]:
    return re.findall(r'<a href="([^"]+)" download><code>([^<]+)</code></a>', shown.data)


def test_download_links_point_to_the_results_copied_beside_the_pages(results_folder):
    shown = download_links(results_folder)
    assert isinstance(shown, HTML)
    assert links(shown) == [
        ("../results/01_localization/per_image.csv", "per_image.csv"),
        ("../results/01_localization/run%20times.csv", "run times.csv"),
        ("../results/01_localization/study/stimuli.csv", "study/stimuli.csv"),
    ]
    assert "(2.5 kB)" in shown.data and "(1.2 kB)" in shown.data and "(0.1 kB)" in shown.data
    assert ".png" not in shown.data


def test_download_links_relative_paths_depth_and_sizes(results_folder, monkeypatch):
    monkeypatch.chdir(results_folder.parent.parent / "results")
    shown = download_links(Path("..") / "results" / "01_localization" / "study", page_depth=2, sizes=False)
    assert links(shown) == [("../../results/01_localization/study/stimuli.csv", "stimuli.csv")]
    assert "kB" not in shown.data
    at_root = download_links(results_folder.parent, page_depth=0)
    assert links(at_root)[0] == ("results/01_localization/per_image.csv", "01_localization/per_image.csv")
    with pytest.raises(ValueError):
        download_links(results_folder, page_depth=-1)


def test_download_links_without_csvs_or_outside_results(tmp_path, results_folder):
    assert "No CSV results files" in download_links(tmp_path / "missing").data
    other = tmp_path / "scratch"
    other.mkdir()
    (other / "t.csv").write_text("x\n")
    shown = download_links(other)
    assert links(shown) == [] and "not linked" in shown.data and "t.csv" in shown.data


def load_extension():
    spec = importlib.util.spec_from_file_location("report_stamp", ROOT / "book" / "_ext" / "report_stamp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stamp_names_the_papermill_run_and_the_commit(tmp_path):
    ext = load_extension()
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"metadata": {"papermill": {"end_time": "2026-11-27T03:30:12.5"}}}))
    page = tmp_path / "page.md"
    page.write_text("# A page\n")
    assert ext.papermill_date(notebook) == "2026-11-27" and ext.papermill_date(page) is None
    assert ext.stamp_text(page) == "Source uncommitted"  # not a git repository
    assert ext.stamp_text(notebook) == "Outputs computed 2026-11-27 (papermill run) · source uncommitted"
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    ext.git_stamp.cache_clear()
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", *identity, "add", "nb.ipynb"], cwd=tmp_path, check=True)
    subprocess.run(["git", *identity, "commit", "-q", "-m", "nb"], cwd=tmp_path, check=True)
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %cs"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.split()
    assert ext.stamp_text(notebook) == (
        f"Outputs computed 2026-11-27 (papermill run) · source at commit {commit[0]} ({commit[1]})"
    )
    assert ext.stamp_text(page) == "Source uncommitted"  # untracked in a repository
    ext.git_stamp.cache_clear()
    notebook.write_text("{}")
    assert ext.stamp_text(notebook).endswith(", with uncommitted changes")


def test_build_copies_results_csvs_only(tmp_path, results_folder):
    ext = load_extension()
    out = tmp_path / "_build" / "html"
    app = SimpleNamespace(srcdir=str(tmp_path), outdir=str(out), builder=SimpleNamespace(format="html"))
    (out / "results" / "stale").mkdir(parents=True)
    ext.copy_results_csvs(app, None)
    copied = sorted(p.relative_to(out).as_posix() for p in (out / "results").rglob("*") if p.is_file())
    assert copied == [
        "results/01_localization/per_image.csv",
        "results/01_localization/run times.csv",
        "results/01_localization/study/stimuli.csv",
    ]
    shutil.rmtree(tmp_path / "results")
    ext.copy_results_csvs(app, None)  # no results folder: nothing to copy, no failure, no stale copy
    assert not (out / "results").exists()
