"""Shared fixtures: the two embedded models, the embedded ILSVRC records, a full-size val folder,
a study folder and a headless browser. Helper functions live in :mod:`tests.helpers`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from gradcam_core import data, models
from gradcam_core.tasks import user_study

torch.set_num_threads(2)

BOOK_TESTS = Path(__file__).with_name("test_book.py")


def pytest_collection_modifyitems(session, config, items):
    """Run the book's browser tests (tests/test_book.py) last in the session.

    ``pytest`` collects ``tests`` before ``notebooks`` and ``book`` (pytest.ini: testpaths), so the
    book tests would build the book before nbval has re-executed the notebooks. On a fresh clone
    (CI) ``results/`` exists only after that re-execution, and the book copies the results CSVs its
    task pages link only when ``results/`` exists at build time: run first, the CSV-link check could
    only see that the links exist, never that they resolve. Moved to the end (in their own order),
    the book is built from the notebooks' fresh outputs and results, and checked as published."""
    book, others = [], []
    for item in items:
        (book if item.path == BOOK_TESTS else others).append(item)
    items[:] = others + book


@pytest.fixture(scope="session")
def ilsvrc_records():
    return data.load_ilsvrc_val()


@pytest.fixture(scope="session")
def squeezenet():
    return models.load_model("squeezenet1_1", device="cpu")


@pytest.fixture(scope="session")
def mobilenet():
    return models.load_model("mobilenet_v1_0.75", device="cpu")


@pytest.fixture(scope="session", params=["squeezenet1_1", "mobilenet_v1_0.75"])
def embedded_model(request, squeezenet, mobilenet):
    return {"squeezenet1_1": squeezenet, "mobilenet_v1_0.75": mobilenet}[request.param]


@pytest.fixture(scope="session")
def full_size_val_folder(tmp_path_factory, ilsvrc_records):
    """Official-layout val folder: four embedded images rescaled back to their original sizes."""
    return data.write_full_size_val(ilsvrc_records[:4], tmp_path_factory.mktemp("val"))


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory, squeezenet, mobilenet, ilsvrc_records):
    """A study folder of 10 images x 2 methods (MobileNet in the role of the more accurate model)."""
    folder = tmp_path_factory.mktemp("study")
    user_study.make_stimuli(
        mobilenet, squeezenet, ilsvrc_records[:80], folder, n_images=10, seed=0, progress=False
    )
    return folder


CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WINDOW = (1400, 1000)  # px: a desktop layout (sidebar, text column, page outline)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Selenium (Debian's ``chromium`` and ``chromium-driver``,
    installed by ``.ci/run``): skipped on a developer's machine without them, a failure in CI."""
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail(
                "chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)"
            )
        pytest.skip("chromium / chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(*WINDOW)  # fixed, so that the book's layout and the widths measured are too
    yield driver
    driver.quit()
