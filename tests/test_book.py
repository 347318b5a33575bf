"""The rendered book in headless Chromium: it builds warning-free from the committed notebooks,
the index and the Task 1 page load, the results table and figures render, no image is broken.

The ``browser`` fixture (conftest) needs Debian's ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def book_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "_build" / "html"


FIGURE_SIZES = (
    "return Array.from(document.querySelectorAll('.cell_output img'))"
    ".map(i => [i.naturalWidth, i.naturalHeight]);"
)
BROKEN_IMAGES = (
    "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
)


def assert_figures_render(browser, minimum: int):
    """At least ``minimum`` output figures with real pixel sizes, and no broken image."""
    figures = browser.execute_script(FIGURE_SIZES)
    assert len(figures) >= minimum and all(w > 100 and h > 100 for w, h in figures)
    assert browser.execute_script(BROKEN_IMAGES) == []


def test_index_page_renders(book_html, browser):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(
        (book_html / "index.html").as_uri()
    )  # a redirect to the introduction, followed by the browser
    WebDriverWait(
        browser, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    ).until(lambda driver: "What is reproduced" in driver.find_element("tag name", "body").text)
    assert "Grad-CAM" in browser.title
    text = browser.find_element("tag name", "body").text
    assert "What is reproduced" in text and "Task 1" in text
    assert browser.execute_script(BROKEN_IMAGES) == []


def test_task1_page_shows_results_table_and_figures(book_html, browser):
    browser.get((book_html / "notebooks" / "01_localization.html").as_uri())
    tables = browser.find_elements("css selector", "table")
    assert any("loc top-1 err" in t.text and "grad-cam" in t.text for t in tables)
    assert_figures_render(browser, minimum=2)


def test_results_page_puts_numbers_beside_the_paper(book_html, browser):
    browser.get((book_html / "book" / "results_vs_paper.html").as_uri())
    text = browser.find_element("tag name", "body").text
    assert "paper Table 1" in text and "seed reproduction" in text and "this report" in text


@pytest.mark.parametrize(
    "page, text",
    [
        ("notebooks/05_chest_xray.html", "stand-in"),
        ("notebooks/07_contrastivity_fidelity.html", "Pope et al."),
        ("notebooks/04_user_study.html", "Running the study"),
    ],
)
def test_new_chapters_render_with_figures(book_html, browser, page, text):
    browser.get((book_html / page).as_uri())
    assert text in browser.find_element("tag name", "body").text
    assert_figures_render(browser, minimum=1)


def test_results_page_has_every_task(book_html, browser):
    browser.get((book_html / "book" / "results_vs_paper.html").as_uri())
    text = browser.find_element("tag name", "body").text
    for heading in ("Task 1", "Task 2", "Task 3", "Task 4", "Task 5", "Task 6", "Task 7"):
        assert heading in text
    assert "densenet121-A" in text and "cifar10-cnn" in text


def test_results_page_shows_every_claim_with_a_verdict_and_a_working_link(book_html, browser):
    from gradcam_core import claims

    browser.get((book_html / "book" / "results_vs_paper.html").as_uri())
    table = browser.find_element("css selector", "table.verdicts")
    rows = table.find_elements("css selector", "tbody tr")
    registry = claims.load_claims()
    assert len(rows) == len(registry)
    for row, claim in zip(rows, registry):
        cells = row.find_elements("tag name", "td")
        assert claim["id"] in cells[0].text
        assert any(cells[3].text.startswith(verdict) for verdict in claims.VERDICTS), cells[3].text
        href = cells[0].find_element("tag name", "a").get_attribute("href")
        assert href.startswith("file://") and Path(href.removeprefix("file://")).is_file(), href
