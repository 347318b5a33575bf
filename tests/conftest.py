"""Shared fixtures: the two embedded models, the embedded ILSVRC records, a full-size val folder,
a study folder and a headless browser. Helper functions live in :mod:`tests.helpers`."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from gradcam_core import data, models
from gradcam_core.tasks import user_study

torch.set_num_threads(2)


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
    folder = tmp_path_factory.mktemp("val")
    _, sizes, _ = data.read_ilsvrc_boxes()
    for record in ilsvrc_records[:4]:
        data.load_rgb(record.path).resize(sizes[record.name]).save(folder / record.name, quality=95)
    return folder


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
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
