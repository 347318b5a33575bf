"""The rendered book in headless Chromium: it builds warning-free from the committed notebooks, and
every page of ``_toc.yml`` passes the same reader-facing checks, each a test per (check, page) so
that a failure names its page:

* no visible code but the parameters cell and at most one other cell input;
* no table or output block wider than the text column (nothing scrolls sideways);
* no ``NaN`` shown to the reader;
* every image in the article is a captioned figure, and no image is broken;
* equations are typeset by the MathJax shipped with the book (the tests run offline, so a CDN
  MathJax fails here), and no raw TeX delimiter is left;
* the provenance stamp (``p.build-stamp``, book/_ext/report_stamp.py) names a commit;
* task pages link their results CSVs, and the links resolve when ``results/`` exists.

Besides, the introduction and the results page each hold the claims' verdict table, one row per
registered claim in registry order. The book is built once per module into a temporary folder.

The tests of this module run last in a ``pytest`` session (conftest: ``pytest_collection_modifyitems``)
so that the book is built after nbval has re-executed the notebooks and written ``results/``: the
CSV links are then checked for real on a fresh clone.

The ``browser`` fixture (conftest) needs Debian's ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"  # written by the task notebooks; copied into the book by book/_ext


def toc_pages(toc_file: Path = ROOT / "_toc.yml") -> list[str]:
    """Every page of the book, in reading order: the root, then each ``file`` of ``_toc.yml``
    (parts, chapters and sections, at any depth)."""
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({key: value for key, value in toc.items() if key != "root"})
    return [str(Path(page).with_suffix("")) for page in pages]


PAGES = toc_pages()
TASK_PAGES = [page for page in PAGES if page.startswith("notebooks/")]
VERDICT_PAGES = ["book/intro", "book/results_vs_paper"]


def source_of(page: str) -> Path:
    """The source file of a page (``.md``, ``.ipynb``, ...)."""
    for suffix in (".md", ".ipynb", ".rst"):
        if (ROOT / page).with_suffix(suffix).is_file():
            return (ROOT / page).with_suffix(suffix)
    raise FileNotFoundError(f"no source for the toc entry {page!r}")


CODE_FENCE = re.compile(r"^(```|~~~)(?!\{math\}).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+).+?\1", re.DOTALL)
MATH_SOURCE = re.compile(r"\$\$|\$[^$\n]+\$|\{math\}")


def source_has_math(page: str) -> bool:
    """Whether a page's prose (markdown, or a notebook's markdown cells) has ``$...$``, ``$$`` or a
    ``{math}`` role or directive; code blocks and inline code do not count."""
    path = source_of(page)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    text = INLINE_CODE.sub("", CODE_FENCE.sub("", text))
    return bool(MATH_SOURCE.search(text))


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


# MathJax typesets after the load event and changes the layout: measurements wait for it (where a
# MathJax loaded at all; a failed one leaves the configuration object without ``startup``).
WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const promise = window.MathJax && MathJax.startup && MathJax.startup.promise;
if (promise) promise.then(() => done(true), () => done(false)); else done(false);
"""


def open_page(browser, book_html: Path, page: str) -> None:
    """Load a page (``browser.get`` waits for the load event: scripts and images) and let MathJax finish."""
    path = book_html / f"{page}.html"
    assert path.is_file(), f"{page}: not built ({path})"
    browser.get(path.as_uri())
    browser.execute_async_script(WAIT_FOR_MATHJAX)


def file_of(href: str) -> Path:
    """The local file a ``file://`` link points to (without query or fragment)."""
    url = urlparse(href)
    assert url.scheme == "file", href
    return Path(unquote(url.path))


FIGURE_SIZES = (  # the article's images: cell outputs, and figures pasted by glue
    "return Array.from(document.querySelectorAll('article.bd-article img'))"
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


# --- every page -----------------------------------------------------------------------------------

VISIBLE_CODE_ALLOWED = 1  # besides the parameters cell: at most one "result call" shown
# Whether a cell input is the parameters cell's, and its code (the copy button's label left out).
CELL_INPUT = """
const input = arguments[0];
const cell = input.closest('div.cell');
return [Boolean(cell && cell.classList.contains('tag_parameters')),
        (input.querySelector('pre') || input).textContent];
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_no_code_but_the_parameters_and_one_call(book_html, browser, page):
    """Cell inputs a reader sees: ``hide-input`` folds them into a closed ``<details>`` (not
    displayed), ``remove-input`` drops them; the ``parameters`` cell (``div.cell.tag_parameters``)
    may stay in view, and one other input at most."""
    open_page(browser, book_html, page)
    visible = []
    for cell_input in browser.find_elements("css selector", "article div.cell_input"):
        if not cell_input.is_displayed():
            continue
        parameters, code = browser.execute_script(CELL_INPUT, cell_input)
        if not parameters:
            visible.append(" ".join(code.split())[:80])
    assert len(visible) <= VISIBLE_CODE_ALLOWED, (
        f"{page}: {len(visible)} visible code inputs besides the parameters cell "
        f"(at most {VISIBLE_CODE_ALLOWED}): {visible}"
    )


# An element is too wide when it scrolls itself (scrollWidth > clientWidth: a <pre> or an output
# block with overflow auto), when its scroll container scrolls (pandas' tables sit in
# ``div.output.text_html``, markdown tables in ``div.pst-scrollable-table-container``, both
# overflow-x auto), or, with no scroll container inside the article, when it sticks out of the
# article. An overflow is reported once, on the outermost element it shows in. Hidden elements
# (inputs folded by hide-input) are not measured.
WIDE_ELEMENTS = """
const article = document.querySelector('article.bd-article') || document.body;
const box = article.getBoundingClientRect();
const describe = e => [e.tagName.toLowerCase(), ...String(e.className).split(/\\s+/).filter(Boolean)]
  .join('.');
const text = e => (e.innerText || e.textContent || '').replace(/\\s+/g, ' ').trim().slice(0, 80);
const reported = new Set();
const wide = [];
for (const e of article.querySelectorAll('table, pre, .output')) {
  if (!e.checkVisibility()) continue;
  let problem = null;
  if (e.scrollWidth > e.clientWidth + 1) {
    problem = `scrolls: ${e.scrollWidth} px of content in ${e.clientWidth} px`;
  } else {
    let c = e.parentElement;
    while (c && c !== article && getComputedStyle(c).overflowX === 'visible') c = c.parentElement;
    if (c && c !== article) {
      if (reported.has(c)) continue;
      if (c.scrollWidth > c.clientWidth + 1) {
        problem = `its container ${describe(c)} scrolls: ${c.scrollWidth} px in ${c.clientWidth} px`;
        reported.add(c);
      }
    } else {
      const r = e.getBoundingClientRect();
      if (r.right > box.right + 1 || r.left < box.left - 1)
        problem = `sticks out of the article: ${Math.round(r.width)} px wide in ${Math.round(box.width)} px`;
    }
  }
  if (problem) {
    reported.add(e);
    wide.push(`${describe(e)} (${problem}): ${JSON.stringify(text(e))}`);
  }
}
if (article.scrollWidth > article.clientWidth + 1)
  wide.push(`the article itself scrolls: ${article.scrollWidth} px in ${article.clientWidth} px`);
return wide;
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_has_nothing_wider_than_the_column(book_html, browser, page):
    open_page(browser, book_html, page)
    wide = browser.execute_script(WIDE_ELEMENTS)
    assert not wide, f"{page}: {len(wide)} element(s) wider than the text column:\n" + "\n".join(wide)


NAN = re.compile(r"\bNaN\b")


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_no_nan(book_html, browser, page):
    open_page(browser, book_html, page)
    text = browser.execute_script("return document.body.innerText;")
    hits = [" ".join(text[max(0, m.start() - 40) : m.end() + 40].split()) for m in NAN.finditer(text)]
    assert not hits, f"{page}: NaN shown {len(hits)} time(s), e.g. " + " | ".join(hits[:5])


# Images of the article (not the theme's logo or icons in the header and sidebars) and the caption
# of the <figure> around each.
ARTICLE_IMAGES = """
const article = document.querySelector('article.bd-article') || document.body;
return Array.from(article.querySelectorAll('img')).map(img => {
  const figure = img.closest('figure');
  const caption = figure && figure.querySelector('figcaption');
  const section = img.closest('section');
  const heading = section && section.querySelector('h1, h2, h3, h4');
  return {src: img.getAttribute('src').split('/').pop(), caption: caption ? caption.textContent.trim() : null,
          section: heading ? heading.textContent.replace(/#$/, '').trim() : ''};
});
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_figures_are_captioned_and_load(book_html, browser, page):
    open_page(browser, book_html, page)
    images = browser.execute_script(ARTICLE_IMAGES)
    uncaptioned = [f"{image['src']} (under {image['section']!r})" for image in images if not image["caption"]]
    assert not uncaptioned, (
        f"{page}: {len(uncaptioned)} of {len(images)} image(s) not in a <figure> with a caption:\n"
        + "\n".join(uncaptioned)
    )
    assert browser.execute_script(BROKEN_IMAGES) == [], f"{page}: broken images"


# Text a reader sees that still holds a TeX delimiter (code blocks, scripts and typeset math excluded).
RAW_TEX = """
const article = document.querySelector('article.bd-article') || document.body;
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {acceptNode: node =>
  node.parentElement.closest('pre, code, script, style, textarea, mjx-container')
    ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
const raw = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const i = node.data.search(/\\\\\\(|\\\\\\[|\\$\\$/);
  if (i >= 0) raw.push(node.data.slice(Math.max(0, i - 20), i + 60).replace(/\\s+/g, ' '));
}
return raw;
"""
UNTYPESET_MATH = (
    "return Array.from(document.querySelectorAll('article .math'))"
    ".filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.trim().slice(0, 80));"
)


@pytest.mark.parametrize("page", PAGES)
def test_page_equations_are_typeset_offline(book_html, browser, page):
    """The tests have no network: equations render only with the MathJax that ships with the book."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, book_html, page)
    if source_has_math(page):
        try:
            WebDriverWait(browser, 10).until(
                lambda driver: driver.execute_script(
                    "return document.querySelectorAll('mjx-container').length;"
                )
            )
        except TimeoutException:
            scripts = browser.execute_script(
                "return Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s));"
            )
            pytest.fail(f"{page}: has math but no typeset equation after 10 s; MathJax from {scripts}")
        untypeset = browser.execute_script(UNTYPESET_MATH)
        assert not untypeset, f"{page}: math not typeset: {untypeset}"
    raw = browser.execute_script(RAW_TEX)
    assert not raw, f"{page}: raw TeX shown: {raw}"


STAMP = re.compile(r"\b[0-9a-f]{7,40}\b|uncommitted")


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_the_build_stamp(book_html, browser, page):
    open_page(browser, book_html, page)
    stamps = [p.text for p in browser.find_elements("css selector", "p.build-stamp")]
    assert stamps, f"{page}: no p.build-stamp"
    assert any(STAMP.search(stamp) for stamp in stamps), f"{page}: no commit in the stamp {stamps}"


CSV_LINKS = (
    "return Array.from(document.querySelectorAll('article a[href$=\".csv\"]'))"
    ".map(a => [a.href, a.textContent.trim()]);"
)


@pytest.mark.parametrize("page", TASK_PAGES)
def test_task_page_links_its_results_csvs(book_html, browser, page):
    """Each task page links its results CSVs for download (``../results/<task>/<file>.csv``, copied into
    the build by book/_ext). With ``results/`` present (after the notebooks ran: this module runs last
    in a session), every link must resolve inside the built book; in a run without results (unit
    tests only) the links must exist."""
    open_page(browser, book_html, page)
    links = browser.execute_script(CSV_LINKS)
    assert links, f"{page}: no link to a results CSV (a[href$='.csv'])"
    if not RESULTS.is_dir():
        return
    site = book_html.resolve()
    dead = []
    for href, label in links:
        target = file_of(href).resolve()
        if not (target.is_relative_to(site) and target.is_file()):
            dead.append(f"{label!r} -> {href}")
    assert not dead, f"{page}: {len(dead)} dead CSV link(s) though {RESULTS} exists:\n" + "\n".join(dead)


# --- the verdict tables ---------------------------------------------------------------------------

# Each table's header row (the one with the most cells, of thead or, without one, the first row) and
# its body rows as cells (th and td, in order) with their text and link targets.
TABLES = """
const article = document.querySelector('article.bd-article') || document.body;
const cell = c => ({text: c.innerText.trim(),
                    hrefs: Array.from(c.querySelectorAll('a[href]')).map(a => a.href)});
return Array.from(article.querySelectorAll('table')).map(t => {
  const headRows = t.tHead ? Array.from(t.tHead.rows) : (t.rows.length ? [t.rows[0]] : []);
  const header = headRows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))
    .sort((a, b) => b.length - a.length)[0] || [];
  const body = Array.from(t.tBodies).flatMap(b => Array.from(b.rows))
    .filter(r => !headRows.includes(r)).map(r => Array.from(r.cells).map(cell));
  return {header, body};
});
"""


@pytest.mark.parametrize("page", VERDICT_PAGES)
def test_page_shows_every_claim_with_a_verdict_and_a_working_link(book_html, browser, page):
    from gradcam_core import claims

    open_page(browser, book_html, page)
    tables = [
        table
        for table in browser.execute_script(TABLES)
        if any("verdict" in name.lower() for name in table["header"])
    ]
    assert tables, f"{page}: no table with a 'verdict' column"
    table = tables[0]
    column = next(i for i, name in enumerate(table["header"]) if "verdict" in name.lower())
    registry = claims.load_claims()
    assert len(table["body"]) == len(registry), (
        f"{page}: {len(table['body'])} rows in the verdict table, {len(registry)} registered claims"
    )
    for row, claim in zip(table["body"], registry):
        text = " ".join(cell["text"] for cell in row)
        assert re.search(rf"(?<![\w-]){re.escape(claim['id'])}(?![\w-])", text), (
            f"{page}: expected claim {claim['id']} (registry order), got row {text[:120]!r}"
        )
        assert len(row) == len(table["header"]), f"{page}: {claim['id']}: row and header differ in length"
        verdict = row[column]["text"]
        assert verdict.startswith(claims.VERDICTS), f"{page}: {claim['id']}: verdict {verdict!r}"
        hrefs = [href for cell in row for href in cell["hrefs"]]
        assert hrefs, f"{page}: {claim['id']}: no link"
        for href in hrefs:
            if href.startswith("file://"):
                assert file_of(href).is_file(), f"{page}: {claim['id']}: dead link {href}"


# --- particular pages -----------------------------------------------------------------------------


def test_toc_lists_the_pages_checked():
    assert PAGES[0] == "book/intro" and TASK_PAGES and set(VERDICT_PAGES) <= set(PAGES)
    assert all(source_of(page).is_file() for page in PAGES)


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
    open_page(browser, book_html, "notebooks/01_localization")
    tables = browser.find_elements("css selector", "table")
    assert any("loc top-1 err" in t.text and "grad-cam" in t.text for t in tables)
    assert_figures_render(browser, minimum=2)


def test_results_page_puts_numbers_beside_the_paper(book_html, browser):
    open_page(browser, book_html, "book/results_vs_paper")
    text = browser.find_element("tag name", "body").text
    assert "paper Table 1" in text and "DD2412 reproduction" in text and "this report" in text


@pytest.mark.parametrize("page", PAGES)
def test_the_reproduction_is_called_by_its_plain_name(book_html, browser, page):
    """The DD2412 reproduction is named (and linked once, in the introduction), never "the seed"."""
    open_page(browser, book_html, page)
    text = browser.find_element("tag name", "body").text
    assert not re.search(r"\b[Tt]he seed\b|\bseed's\b|\bseed reproduction\b", text), page
    links = browser.find_elements("css selector", "a[href*='ddnimara/DD2412-Project-Grad-CAM']")
    assert len(links) == (1 if page == "book/intro" else 0), page


@pytest.mark.parametrize(
    "page, text",
    [
        ("notebooks/05_chest_xray", "stand-in"),
        ("notebooks/07_contrastivity_fidelity", "Pope et al."),
        ("notebooks/04_user_study", "Running the study"),
        ("notebooks/08_beyond_the_paper", "Adebayo et al."),
    ],
)
def test_new_chapters_render_with_figures(book_html, browser, page, text):
    open_page(browser, book_html, page)
    assert text in browser.find_element("tag name", "body").text
    assert_figures_render(browser, minimum=1)


def test_results_page_has_every_task(book_html, browser):
    open_page(browser, book_html, "book/results_vs_paper")
    text = browser.find_element("tag name", "body").text
    for heading in ("Task 1", "Task 2", "Task 3", "Task 4", "Task 5", "Task 6", "Task 7"):
        assert heading in text
    assert "densenet121-A" in text and "cifar10-cnn" in text
