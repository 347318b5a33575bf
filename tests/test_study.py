"""Task 4: stimuli, the survey web app (browser, load, restart, bad input) and the analysis.

The analysis tests use ``tests/fixtures/SYNTHETIC_responses.csv``: invented ratings, labelled
as such in the file name and in ``tests/fixtures/README.md``, used only to check the code
against hand computations and never shown as a result.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gradcam_core import data, study

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, squeezenet, mobilenet, ilsvrc_records):
    folder = tmp_path_factory.mktemp("study")
    study.make_stimuli(
        mobilenet, squeezenet, ilsvrc_records[:80], folder, n_images=10, seed=0, progress=False
    )
    return folder


# ------------------------------------------------------------------------------ stimuli


def test_stimuli_folder_records_sides_and_only_images_both_models_get_right(
    study_dir, squeezenet, mobilenet, ilsvrc_records
):
    info, manifest = study.load_study(study_dir)
    assert len(manifest) == 20 and manifest["image"].nunique() == 10
    assert set(manifest["method"]) == set(study.STUDY_METHODS)
    assert info["accurate_model"] == "mobilenet_v1_0.75" and info["other_model"] == "squeezenet1_1"
    for r in manifest.to_dict("records"):
        accurate_on = "left" if r["left_model"] == "mobilenet_v1_0.75" else "right"
        assert r["accurate_side"] == accurate_on and {r["left_model"], r["right_model"]} == {
            "mobilenet_v1_0.75",
            "squeezenet1_1",
        }
        for key in ("original_file", "left_file", "right_file"):
            assert (study_dir / "images" / r[key]).is_file()
    assert 0 < (manifest["accurate_side"] == "left").sum() < 20  # randomised, not constant
    by_name = {r.name: r for r in ilsvrc_records}
    for name in manifest["image"].unique():
        record = by_name[name]
        image = data.load_rgb(record.path)
        for model in (squeezenet, mobilenet):
            assert int(model(model.preprocess([image])).argmax()) == record.label


def test_stimuli_are_reproducible_with_the_seed(study_dir, squeezenet, mobilenet, ilsvrc_records, tmp_path):
    again = study.make_stimuli(
        mobilenet, squeezenet, ilsvrc_records[:80], tmp_path, n_images=10, seed=0, progress=False
    )
    pd.testing.assert_frame_equal(again, study.load_study(study_dir)[1])
    assert (tmp_path / "images" / "s001_left.png").read_bytes() == (
        study_dir / "images" / "s001_left.png"
    ).read_bytes()


def test_bad_study_folder_is_named(tmp_path):
    with pytest.raises(study.StudyError, match="study.json: missing"):
        study.load_study(tmp_path)


def test_explanation_image_is_centred_grey():
    picture = study.explanation_image(np.zeros((3, 4, 4)))
    assert picture.shape == (4, 4, 3) and (picture == 128).all()


# ------------------------------------------------------------------------------ the web app


class Survey:
    """The survey served on a free loopback port in a background thread."""

    def __init__(self, folder, db):
        self.server = study.make_server(folder, db, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def get(self, path):
        return request(self.url + path)

    def post(self, path, fields):
        return request(self.url + path, urllib.parse.urlencode(fields).encode())


def request(url, body=None):
    """``(status, text)``, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


@pytest.fixture
def survey(study_dir, tmp_path):
    running = Survey(study_dir, tmp_path / "responses.sqlite")
    yield running
    running.stop()


def rows(db):
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT rater, stimulus, method, left_model, right_model, rating FROM responses ORDER BY id"
        ).fetchall()


def test_pages_progress_and_resume_after_closing_the_browser(survey, study_dir, tmp_path):
    status, text = survey.get("/")
    assert status == 200 and "rater id" in text
    status, text = survey.post("/start", {"rater": "r1"})  # redirected to the first stimulus
    assert status == 200 and "1 of 20" in text
    manifest = study.load_study(study_dir)[1].set_index("stimulus")
    order = study.rater_order(list(manifest.index), "r1")
    assert f'value="{order[0]}"' in text and manifest.loc[order[0], "class_name"] in text
    status, text = survey.post("/rate/r1", {"stimulus": order[0], "rating": "2"})
    assert status == 200 and "2 of 20" in text and f'value="{order[1]}"' in text
    survey.post("/rate/r1", {"stimulus": order[1], "rating": "-1"})
    # a new visit (no cookies, nothing but the id) resumes at the third stimulus
    status, text = survey.post("/start", {"rater": "r1"})
    assert "3 of 20" in text and f'value="{order[2]}"' in text
    assert rows(tmp_path / "responses.sqlite") == [
        (
            "r1",
            order[0],
            manifest.loc[order[0], "method"],
            manifest.loc[order[0], "left_model"],
            manifest.loc[order[0], "right_model"],
            2,
        ),
        (
            "r1",
            order[1],
            manifest.loc[order[1], "method"],
            manifest.loc[order[1], "left_model"],
            manifest.loc[order[1], "right_model"],
            -1,
        ),
    ]
    with sqlite3.connect(tmp_path / "responses.sqlite") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_finishing_leads_to_the_thank_you_page(survey, study_dir):
    for stimulus in study.load_study(study_dir)[1]["stimulus"]:
        status, text = survey.post("/rate/done1", {"stimulus": stimulus, "rating": "0"})
    assert status == 200 and "Thank you" in text and "all 20 pairs" in text


@pytest.mark.parametrize(
    "path, fields, status, message",
    [
        ("/rate/r2", {"stimulus": "s001", "rating": "3"}, 400, "rating must be one of"),
        ("/rate/r2", {"stimulus": "s001", "rating": "-3"}, 400, "rating must be one of"),
        ("/rate/r2", {"stimulus": "s001", "rating": "1.5"}, 400, "rating must be one of"),
        ("/rate/r2", {"stimulus": "s001", "rating": "nan"}, 400, "rating must be one of"),
        ("/rate/r2", {"stimulus": "s001"}, 400, "rating must be one of"),
        ("/rate/r2", {"stimulus": "s999", "rating": "1"}, 404, "unknown stimulus 's999'"),
        ("/rate/r2", {"stimulus": "s001' OR '1'='1", "rating": "1"}, 404, "unknown stimulus"),
        ("/rate/r2", {"rating": "1"}, 404, "unknown stimulus"),
        ("/rate/bad%20id';DROP%20TABLE%20responses;--", {"stimulus": "s001", "rating": "1"}, 400, "rater id"),
        ("/start", {"rater": ""}, 400, "rater id"),
        ("/start", {"rater": "x" * 65}, 400, "rater id"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_store_nothing(survey, tmp_path, path, fields, status, message):
    code, text = survey.post(path, fields)
    assert code == status and message in text
    assert rows(tmp_path / "responses.sqlite") == []


def test_oversized_and_wrong_method_requests_are_refused(survey, tmp_path):
    code, text = survey.post("/rate/r3", {"stimulus": "s001", "rating": "1", "pad": "x" * 20000})
    assert code == 413
    assert survey.get("/start")[0] == 405
    assert rows(tmp_path / "responses.sqlite") == []


@pytest.mark.parametrize(
    "path",
    [
        "/images/../stimuli.csv",
        "/images/%2e%2e/stimuli.csv",
        "/images/..%2fstudy.json",
        "/images//etc/passwd",
        "/images/nothing.png",
        "/stimuli.csv",
    ],
)
def test_static_files_only_from_the_study_images(survey, path):
    status, text = survey.get(path)
    assert status == 404 and "stimulus,image" not in text and "root:" not in text


def test_images_are_served(survey):
    status, _ = survey.get("/images/s001_left.png")
    assert status == 200


def test_restarting_the_server_loses_nothing(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    first = Survey(study_dir, db)
    order = study.rater_order(list(study.load_study(study_dir)[1]["stimulus"]), "r4")
    for stimulus, rating in zip(order[:3], ("1", "2", "-2")):
        first.post("/rate/r4", {"stimulus": stimulus, "rating": rating})
    first.stop()
    second = Survey(study_dir, db)
    try:
        status, text = second.post("/start", {"rater": "r4"})
        assert "4 of 20" in text and f'value="{order[3]}"' in text
        second.post("/rate/r4", {"stimulus": order[3], "rating": "0"})
    finally:
        second.stop()
    assert [(r[1], r[5]) for r in rows(db)] == list(zip(order[:4], (1, 2, -2, 0)))


def test_load_50_concurrent_raters_20_ratings_each_stored_exactly_once(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    survey = Survey(study_dir, db)
    stimuli = list(study.load_study(study_dir)[1]["stimulus"])
    expected = {(f"load{r:02d}", s): (r + i) % 5 - 2 for r in range(50) for i, s in enumerate(stimuli)}

    def rater(r):
        failures = 0
        for i, stimulus in enumerate(stimuli):
            status, _ = survey.post(
                f"/rate/load{r:02d}", {"stimulus": stimulus, "rating": str((r + i) % 5 - 2)}
            )
            failures += status != 200
        # a resent form (double click) must not add a row
        survey.post(f"/rate/load{r:02d}", {"stimulus": stimuli[0], "rating": "2"})
        return failures

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            failures = sum(pool.map(rater, range(50)))
    finally:
        survey.stop()
    seconds = time.perf_counter() - start
    stored = {(r[0], r[1]): r[5] for r in rows(db)}
    print(
        f"\nload test: 50 raters x 20 ratings sent (+50 resent), {len(rows(db))} rows stored, "
        f"{len(expected) - len(set(stored) & set(expected))} lost, {failures} failed requests, {seconds:.1f} s"
    )
    assert failures == 0 and len(rows(db)) == 1000 and stored == expected
    assert seconds < 120  # bounded: about 2,100 requests on loopback


def test_export_writes_every_rating(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    connection = study.connect(db)
    manifest = study.load_study(study_dir)[1].to_dict("records")
    assert study.store_rating(connection, "a", manifest[0], 1)
    assert not study.store_rating(connection, "a", manifest[0], -1)  # once per (rater, stimulus)
    assert study.store_rating(connection, "b", manifest[0], -2)
    connection.close()
    assert study.main(["export", "--db", str(db), "--out", str(tmp_path / "out.csv")]) == 0
    table = study.read_responses(tmp_path / "out.csv")
    assert table[["rater", "rating"]].values.tolist() == [["a", 1], ["b", -2]]
    assert study.main(["export", "--db", str(tmp_path / "absent.sqlite")]) == 2


def test_browser_rates_three_stimuli_by_clicking(browser, survey, study_dir, tmp_path):
    browser.get(survey.url + "/")
    browser.find_element("id", "rater").send_keys("browser1")
    browser.find_element("id", "begin").click()
    order = study.rater_order(list(study.load_study(study_dir)[1]["stimulus"]), "browser1")
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for_progress(text):
        WebDriverWait(
            browser, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        ).until(lambda driver: driver.find_element("id", "progress").text == text)

    clicks = [2, -1, 0]
    for step, value in enumerate(clicks, start=1):
        wait_for_progress(f"{step} of 20")
        images = browser.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth);"
        )
        assert len(images) == 3 and all(w and w > 0 for w in images)
        browser.find_element("id", f"rating{value}").click()
    wait_for_progress("4 of 20")
    assert [(r[0], r[1], r[5]) for r in rows(tmp_path / "responses.sqlite")] == [
        ("browser1", s, v) for s, v in zip(order[:3], clicks)
    ]


# ------------------------------------------------------------------------------ analysis (SYNTHETIC data)


@pytest.fixture
def synthetic():
    return study.signed_ratings(study.read_responses(FIXTURES / "SYNTHETIC_responses.csv"), "vgg16")


def test_signs_are_mapped_to_the_more_accurate_model(synthetic):
    first = synthetic.iloc[0]  # vgg16 on the left, rating -2: the accurate model trusted much more
    assert first["left_model"] == "vgg16" and first["rating"] == -2 and first["signed"] == 2
    right = synthetic[synthetic["right_model"] == "vgg16"]
    assert (right["signed"] == right["rating"]).all()


def test_trust_summary_by_hand(synthetic):
    summary = study.trust_summary(synthetic).set_index("method")
    gb = synthetic[synthetic["method"] == "guided-backprop"]["signed"].to_numpy()
    assert summary.loc["guided-backprop", "mean"] == pytest.approx(round(gb.mean(), 3))
    assert summary.loc["guided-backprop", "std"] == pytest.approx(round(gb.std(ddof=1), 3))
    assert summary.loc["guided-backprop", "Wilcoxon p (vs 0)"] == pytest.approx(
        stats.wilcoxon(gb[gb != 0]).pvalue
    )
    assert summary.loc["guided-backprop", "ratings"] == len(gb)


def test_rater_consistency_by_hand():
    table = pd.DataFrame({"rater": ["a"] * 4 + ["b"] * 2, "signed": [2, 1, -1, 0, 0, 0]})
    out = study.rater_consistency(table).set_index("rater")
    assert out.loc["a", "mean"] == pytest.approx(0.5) and out.loc["a", "consistency"] == pytest.approx(
        2 / 3, abs=5e-4
    )
    assert np.isnan(out.loc["b", "consistency"])


def test_krippendorff_alpha_known_cases():
    perfect = pd.DataFrame(
        {
            "rater": ["a", "a", "a", "b", "b", "b"],
            "stimulus": ["s1", "s2", "s3"] * 2,
            "signed": [2, 0, -1, 2, 0, -1],
        }
    )
    assert study.inter_rater_agreement(perfect) == pytest.approx(1.0)
    one_rater = perfect[perfect["rater"] == "a"]
    assert np.isnan(study.inter_rater_agreement(one_rater))
    # Krippendorff (2011) ordinal example values through the package equal its direct call
    import krippendorff

    opposite = perfect.assign(signed=[2, 0, -2, -2, 0, 2])
    expected = krippendorff.alpha(
        reliability_data=[[2, 0, -2], [-2, 0, 2]],
        level_of_measurement="ordinal",
        value_domain=[-2, -1, 0, 1, 2],
    )
    assert study.inter_rater_agreement(opposite) == pytest.approx(expected) and expected < 0


def test_bad_responses_files_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "rater,stimulus,method,left_model,right_model,rating\na,s1,guided-backprop,vgg16,alexnet,5\n"
    )
    with pytest.raises(study.StudyError, match=r"bad.csv: rating 5 outside -2..\+2 \(row 2\)"):
        study.read_responses(bad)
    bad.write_text("rater,rating\na,1\n")
    with pytest.raises(study.StudyError, match="missing column"):
        study.read_responses(bad)
    with pytest.raises(study.StudyError, match="no such responses file"):
        study.read_responses(tmp_path / "absent.csv")


def test_vs_paper_table_with_no_responses():
    empty = pd.DataFrame(columns=["method", "ratings", "mean"])
    table = study.trust_vs_paper(empty).set_index("method")
    assert table.loc["guided-grad-cam", "paper (VGG-16 vs AlexNet, 54 workers)"] == 1.27
    assert table.loc["guided-backprop", "seed"] == pytest.approx(0.4359)
    assert table["ratings"].tolist() == [0, 0] and table["this study"].isna().all()
