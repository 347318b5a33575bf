"""Shared fixtures: the two embedded models and small batches of real embedded images."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradcam_core import data, models  # noqa: E402

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


def image_batch(model: models.LoadedModel, records, count: int = 4, start: int = 0) -> torch.Tensor:
    return model.preprocess([data.load_rgb(r.path) for r in records[start : start + count]])


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
