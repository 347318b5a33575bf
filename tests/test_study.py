"""The survey of Task 4 (:mod:`gradcam_core.study`): the study folder it serves, the web app
(browser, load, restart, bad input), its storage and export, and the responses file. The stimuli
and the analysis are tested in ``test_tasks_user_study.py`` and ``test_tables.py``; the
``study_dir`` fixture (conftest) is a study folder made by
:func:`gradcam_core.tasks.user_study.make_stimuli`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from gradcam_core import study

# ------------------------------------------------------------------------------ the study folder


def test_bad_study_folder_is_named(tmp_path):
    with pytest.raises(study.StudyError, match="study.json: missing"):
        study.load_study(tmp_path)


def test_broken_study_files_are_named(study_dir, tmp_path):
    for name in (study.STUDY_FILE, study.MANIFEST):
        (tmp_path / name).write_bytes((study_dir / name).read_bytes())
    (tmp_path / study.STUDY_FILE).write_text("{not json")
    with pytest.raises(study.StudyError, match="study.json: not valid JSON"):
        study.load_study(tmp_path)
    (tmp_path / study.STUDY_FILE).write_text(json.dumps({"seed": 0}))
    manifest = (study_dir / study.MANIFEST).read_text().splitlines()
    (tmp_path / study.MANIFEST).write_text("\n".join([manifest[0], manifest[1], manifest[1]]) + "\n")
    with pytest.raises(study.StudyError, match="stimuli.csv: duplicate stimulus ids"):
        study.load_study(tmp_path)
    (tmp_path / study.MANIFEST).write_text("stimulus,image\ns001,a.JPEG\n")
    with pytest.raises(study.StudyError, match=r"stimuli.csv: missing column\(s\) \['accurate_side'"):
        study.load_study(tmp_path)


def test_rater_order_is_a_shuffle_fixed_by_the_rater_id():
    stimuli = [f"s{i:03d}" for i in range(1, 21)]
    order = study.rater_order(stimuli, "r1")
    assert sorted(order) == stimuli and order != stimuli
    assert study.rater_order(stimuli, "r1") == order and study.rater_order(stimuli, "r2") != order


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
        f"{len(expected) - len(set(stored) & set(expected))} lost, {failures} failed requests, "
        f"{seconds:.1f} s"
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
    assert list(table.columns[:6]) == study.RESPONSE_COLUMNS
    assert study.export_responses(db, tmp_path / "again.csv") == 2
    connection = study.connect(db)
    assert study.rated_stimuli(connection, "a") == {manifest[0]["stimulus"]}
    assert study.rated_stimuli(connection, "nobody") == set()
    connection.close()
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


# ------------------------------------------------------------------------------ responses file


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
