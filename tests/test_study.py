"""The survey of Task 4 (:mod:`gradcam_core.study`): the study folder it serves, the web app
(browser, load, restart, bad input), its storage and export, and the responses file. The stimuli
and the analysis are tested in ``test_tasks_user_study.py`` and ``test_tables.py``; the
``study_dir`` fixture (conftest) is a study folder made by
:func:`gradcam_core.tasks.user_study.make_stimuli`.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import http.cookiejar
import json
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
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
    """The survey served (waitress, :func:`study.make_server`) on a free loopback port in a
    background thread."""

    def __init__(self, folder, db, **options):
        self.server = study.make_server(folder, db, "127.0.0.1", 0, **options)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def client(self):
        """A new browser (no cookies yet)."""
        return Client(self.url)

    def get(self, path, headers=None):
        """A request without cookies or token (not a browser of the survey)."""
        return fetch(NO_COOKIES, self.url + path, None, headers)

    def post(self, path, fields, headers=None):
        return fetch(NO_COOKIES, self.url + path, urllib.parse.urlencode(fields).encode(), headers)


def fetch(opener, url, body=None, headers=None):
    """``(status, text)``, 4xx/5xx included (redirects followed)."""
    try:
        with opener.open(
            urllib.request.Request(url, data=body, headers=headers or {}), timeout=60
        ) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


NO_COOKIES = urllib.request.build_opener(urllib.request.ProxyHandler({}))
TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


class Client:
    """One rater's browser: its cookies (the signed session) and the CSRF token of the last page
    it was shown, which it sends with every form as a browser would."""

    def __init__(self, url):
        self.url = url
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.token = None

    def open(self, path, fields=None, headers=None, token=True):
        body = None
        if fields is not None:
            fields = dict(fields)
            if token and self.token is not None:
                fields.setdefault("csrf_token", self.token)
            body = urllib.parse.urlencode(fields).encode()
        status, text = fetch(self.opener, self.url + path, body, headers)
        found = TOKEN.search(text)
        if found:
            self.token = found.group(1)
        return status, text

    def get(self, path):
        return self.open(path)

    def post(self, path, fields, headers=None, token=True):
        return self.open(path, fields, headers, token)

    def start(self, rater):
        """The start page, then the form with ``rater``: ``(status, text)`` of the first pair."""
        self.get("/")
        return self.post("/start", {"rater": rater})


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


def order_of(study_dir, rater):
    return study.rater_order(list(study.load_study(study_dir)[1]["stimulus"]), rater)


def test_pages_progress_and_resume_after_closing_the_browser(survey, study_dir, tmp_path):
    browser = survey.client()
    status, text = browser.get("/")
    assert status == 200 and "rater id" in text
    status, text = browser.post("/start", {"rater": "r1"})  # redirected to the first stimulus
    assert status == 200 and "1 of 20" in text
    manifest = study.load_study(study_dir)[1].set_index("stimulus")
    order = study.rater_order(list(manifest.index), "r1")
    assert f'value="{order[0]}"' in text and manifest.loc[order[0], "class_name"] in text
    status, text = browser.post("/rate/r1", {"stimulus": order[0], "rating": "2"})
    assert status == 200 and "2 of 20" in text and f'value="{order[1]}"' in text
    browser.post("/rate/r1", {"stimulus": order[1], "rating": "-1"})
    # a new browser (no cookies, nothing but the id) resumes at the third stimulus
    status, text = survey.client().start("r1")
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
    browser = survey.client()
    browser.start("done1")
    for stimulus in study.load_study(study_dir)[1]["stimulus"]:
        status, text = browser.post("/rate/done1", {"stimulus": stimulus, "rating": "0"})
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
        ("/rate/r2%0A", {"stimulus": "s001", "rating": "1"}, 400, "rater id"),
        ("/rate/-x", {"stimulus": "s001", "rating": "1"}, 400, "rater id"),
        ("/rate/.", {"stimulus": "s001", "rating": "1"}, 400, "rater id"),
        ("/start", {"rater": ""}, 400, "rater id"),
        ("/start", {"rater": "x" * 65}, 400, "rater id"),
        ("/start", {"rater": "alice\n"}, 400, "rater id"),
        ("/start", {"rater": "."}, 400, "rater id"),
        ("/start", {"rater": ".."}, 400, "rater id"),
        ("/start", {"rater": "-x"}, 400, "rater id"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_store_nothing(survey, tmp_path, path, fields, status, message):
    browser = survey.client()
    browser.start("r2")
    code, text = browser.post(path, fields)
    assert code == status and message in text
    assert rows(tmp_path / "responses.sqlite") == []


def test_rater_ids_are_matched_whole():
    assert (
        study.valid_rater_id("alice") and study.valid_rater_id("a.b_c-9") and study.valid_rater_id("x" * 64)
    )
    for bad in ("alice\n", "\nalice", ".", "..", "-x", "_x", "x" * 65, "", "a b", None):
        assert not study.valid_rater_id(bad), bad


def test_oversized_and_wrong_method_requests_are_refused(survey, tmp_path):
    browser = survey.client()
    browser.start("r3")
    code, text = browser.post("/rate/r3", {"stimulus": "s001", "rating": "1", "pad": "x" * 20000})
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


def test_symlinks_in_the_images_folder_are_not_served(study_dir, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(study_dir, folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    (folder / "images" / "extra.png").symlink_to(secret)  # not in the manifest
    (folder / "images" / "s001_left.png").unlink()
    (folder / "images" / "s001_left.png").symlink_to(secret)  # in the manifest, pointing outside
    (folder / "images" / "s001_right.png").unlink()
    (folder / "images" / "s001_right.png").symlink_to(folder / "images" / "s002_left.png")  # inside
    running = Survey(folder, tmp_path / "responses.sqlite")
    try:
        for name in ("extra.png", "s001_left.png", "s001_right.png"):
            status, text = running.get(f"/images/{name}")
            assert status == 404 and "TOP SECRET" not in text, name
        assert running.get("/images/s002_left.png")[0] == 200
    finally:
        running.stop()


def test_restarting_the_server_loses_nothing_and_keeps_the_session(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    first = Survey(study_dir, db)
    order = order_of(study_dir, "r4")
    browser = first.client()
    browser.start("r4")
    for stimulus, rating in zip(order[:3], ("1", "2", "-2")):
        browser.post("/rate/r4", {"stimulus": stimulus, "rating": rating})
    first.stop()
    second = Survey(study_dir, db)
    try:
        browser.url = second.url  # the same browser: its cookie is still valid (the key is beside the db)
        status, text = browser.get("/rate/r4")
        assert status == 200 and "4 of 20" in text and f'value="{order[3]}"' in text
        assert browser.post("/rate/r4", {"stimulus": order[3], "rating": "0"})[0] == 200
    finally:
        second.stop()
    assert [(r[1], r[5]) for r in rows(db)] == list(zip(order[:4], (1, 2, -2, 0)))


def test_load_50_concurrent_raters_20_ratings_each_stored_exactly_once(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    survey = Survey(study_dir, db)
    stimuli = list(study.load_study(study_dir)[1]["stimulus"])
    expected = {(f"load{r:02d}", s): (r + i) % 5 - 2 for r in range(50) for i, s in enumerate(stimuli)}

    def rater(r):
        browser, acknowledged, latencies = survey.client(), 0, []
        browser.start(f"load{r:02d}")
        for i, stimulus in enumerate(stimuli):
            sent = time.perf_counter()
            status, _ = browser.post(
                f"/rate/load{r:02d}", {"stimulus": stimulus, "rating": str((r + i) % 5 - 2)}
            )
            latencies.append(time.perf_counter() - sent)
            acknowledged += status == 200
        # a resent form with another answer must not add or change a row: 409 Conflict
        resent = browser.post(f"/rate/load{r:02d}", {"stimulus": stimuli[0], "rating": str(2 - r % 5)})[0]
        return acknowledged, latencies, resent

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(rater, range(50)))
    finally:
        survey.stop()
    seconds = time.perf_counter() - start
    acknowledged = sum(a for a, _, _ in results)
    latencies = sorted(x for _, lat, _ in results for x in lat)
    stored_rows = rows(db)
    stored = {(r[0], r[1]): r[5] for r in stored_rows}
    lost = len(set(expected) - set(stored))
    duplicated = len(stored_rows) - len(stored)
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"\nload test (waitress): 50 raters x 20 ratings, {acknowledged} acknowledged, "
        f"{len(stored_rows)} stored, {lost} lost, {duplicated} duplicated, resent answers "
        f"{sorted({c for _, _, c in results})}, latency p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms, "
        f"{seconds:.1f} s"
    )
    assert acknowledged == 1000 and len(stored_rows) == 1000 and stored == expected
    assert {c for _, _, c in results} <= {409, 200}  # 200 where the resent answer equals the stored one
    assert seconds < 120  # bounded: about 2,200 requests on loopback


def test_slow_clients_neither_block_raters_nor_stay_connected(study_dir, tmp_path):
    survey = Survey(study_dir, tmp_path / "responses.sqlite", channel_timeout=1)
    idle = []
    try:
        for i in range(30):  # half a request each, then silence (slowloris)
            sock = socket.create_connection(("127.0.0.1", survey.server.server_port), timeout=10)
            partial = (
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                if i % 2
                else b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nrater="
            )
            sock.sendall(partial)
            idle.append(sock)
        order = order_of(study_dir, "prompt1")
        browser, sent = survey.client(), time.perf_counter()
        assert browser.start("prompt1")[0] == 200
        for stimulus in order[:5]:
            assert browser.post("/rate/prompt1", {"stimulus": stimulus, "rating": "1"})[0] == 200
        assert time.perf_counter() - sent < 10  # a few ms each on an idle machine
        assert len(rows(tmp_path / "responses.sqlite")) == 5
        waited = time.perf_counter()
        for sock in idle:  # each is closed by the server after about channel_timeout
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(4096):
                    pass
        assert time.perf_counter() - waited < 10
    finally:
        for sock in idle:
            sock.close()
        survey.stop()


# ------------------------------------------------------------------------------ forged requests


def test_posts_from_another_origin_are_refused_and_store_nothing(survey, study_dir, tmp_path):
    browser = survey.client()
    browser.start("victim")
    stimulus = order_of(study_dir, "victim")[0]
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": survey.url.replace("127.0.0.1", "localhost")},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": survey.url, "Sec-Fetch-Site": "cross-site"},
    ):
        status, text = browser.post("/rate/victim", {"stimulus": stimulus, "rating": "2"}, headers)
        assert status == 403, headers
        assert browser.post("/start", {"rater": "other"}, headers)[0] == 403, headers
    assert rows(tmp_path / "responses.sqlite") == []
    same = {"Origin": survey.url, "Sec-Fetch-Site": "same-origin"}  # as the survey's own page sends it
    assert browser.post("/rate/victim", {"stimulus": stimulus, "rating": "2"}, same)[0] == 200
    assert [r[0] for r in rows(tmp_path / "responses.sqlite")] == ["victim"]


def test_posts_without_the_session_token_are_refused(survey, study_dir, tmp_path):
    browser = survey.client()
    browser.start("r6")
    fields = {"stimulus": order_of(study_dir, "r6")[0], "rating": "1"}
    assert browser.post("/rate/r6", fields, token=False)[0] == 403
    status, text = browser.post("/rate/r6", {**fields, "csrf_token": "forged"})
    assert status == 403 and "token" in text
    assert survey.post("/rate/r6", {**fields, "csrf_token": browser.token})[0] == 403  # no session cookie
    assert survey.post("/start", {"rater": "r6"})[0] == 403
    other = survey.client()
    other.get("/")
    assert other.post("/rate/r6", {**fields, "csrf_token": browser.token})[0] == 403  # another session's
    assert rows(tmp_path / "responses.sqlite") == []


def test_a_session_rates_only_as_its_own_rater(survey, study_dir, tmp_path):
    browser = survey.client()
    browser.start("alice")
    fields = {"stimulus": order_of(study_dir, "bob")[0], "rating": "-2"}
    status, text = browser.post("/rate/bob", fields)
    assert status == 403 and "has not started as 'bob'" in text
    assert browser.get("/rate/bob")[0] == 403
    assert survey.get("/rate/alice")[0] == 403  # no session at all
    assert rows(tmp_path / "responses.sqlite") == []


def test_every_response_carries_security_headers_and_the_cookie_is_strict(survey):
    connection = http.client.HTTPConnection("127.0.0.1", survey.server.server_port, timeout=30)
    try:
        for path in ("/", "/images/s001_left.png", "/nothing"):
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert response.getheader("X-Frame-Options") == "DENY", path
            assert response.getheader("X-Content-Type-Options") == "nosniff", path
            assert response.getheader("Referrer-Policy") == "same-origin", path
            policy = response.getheader("Content-Security-Policy")
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
            if path == "/":
                cookie = response.getheader("Set-Cookie")
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    finally:
        connection.close()


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_its_origin_accepted(study_dir, tmp_path):
    running = Survey(study_dir, tmp_path / "responses.sqlite", trusted_proxy="127.0.0.1")
    proxied = {"Host": "survey.example.org", "X-Forwarded-Proto": "https"}
    connection = http.client.HTTPConnection("127.0.0.1", running.server.server_port, timeout=30)
    try:
        connection.request("GET", "/", headers=proxied)
        response = connection.getresponse()
        token = TOKEN.search(response.read().decode()).group(1)
        cookie = response.getheader("Set-Cookie")
        assert "Secure" in cookie and "SameSite=Strict" in cookie
        form = urllib.parse.urlencode({"rater": "tls1", "csrf_token": token})
        headers = {
            **proxied,
            "Origin": "https://survey.example.org",
            "Cookie": cookie.split(";")[0],
            "Content-Type": "application/x-www-form-urlencoded",
        }
        connection.request("POST", "/start", body=form, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 303 and response.getheader("Location") == "/rate/tls1"
        connection.request(
            "POST", "/start", body=form, headers={**headers, "Origin": "http://survey.example.org"}
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 403
    finally:
        connection.close()
        running.stop()


def test_invitations_admit_only_the_listed_ids(study_dir, tmp_path):
    listed = tmp_path / "invitations.txt"
    listed.write_text("# one id per line\nk7Qw2-inv\n\nz9Xc4-inv  # second rater\n")
    assert study.read_invitations(listed) == {"k7Qw2-inv", "z9Xc4-inv"}
    running = Survey(study_dir, tmp_path / "responses.sqlite", invitations=study.read_invitations(listed))
    try:
        status, text = running.client().start("intruder")
        assert status == 403 and "not invited" in text
        assert running.client().start("k7Qw2-inv")[0] == 200
    finally:
        running.stop()
    assert rows(tmp_path / "responses.sqlite") == []
    listed.write_text("ok1\n../etc\n")
    with pytest.raises(study.StudyError, match=r"invitations.txt:2: '../etc': rater id must"):
        study.read_invitations(listed)


def test_the_session_key_is_kept_beside_the_database_or_taken_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(study.SECRET_ENV, raising=False)
    db = tmp_path / "responses.sqlite"
    key = study.secret_key(db)
    path = tmp_path / "responses.sqlite.secret"
    assert len(key) >= 32 and path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert study.secret_key(db) == key and stat.S_IMODE(path.stat().st_mode) == 0o600  # restart: the same
    assert study.secret_key(tmp_path / "other.sqlite") != key
    monkeypatch.setenv(study.SECRET_ENV, "from-the-environment")
    assert study.secret_key(tmp_path / "third.sqlite") == "from-the-environment"
    assert not (tmp_path / "third.sqlite.secret").exists()


# ------------------------------------------------------------------------------ conflicts


def test_a_different_answer_for_a_rated_pair_is_a_conflict_and_the_first_is_kept(survey, study_dir, tmp_path):
    browser = survey.client()
    browser.start("r5")
    first = order_of(study_dir, "r5")[0]
    assert browser.post("/rate/r5", {"stimulus": first, "rating": "1"})[0] == 200
    status, text = browser.post("/rate/r5", {"stimulus": first, "rating": "-2"})
    assert status == 409 and "earlier answer was kept" in text and "+1: Right is somewhat" in text
    status, text = browser.post("/rate/r5", {"stimulus": first, "rating": "1"})  # the same answer again
    assert status == 200 and "2 of 20" in text
    assert [(r[0], r[1], r[5]) for r in rows(tmp_path / "responses.sqlite")] == [("r5", first, 1)]


# ------------------------------------------------------------------------------ the server process


def test_a_killed_server_restarts_with_its_ratings_and_sessions(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"

    def serve():
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gradcam_core.study",
                "serve",
                str(study_dir),
                "--db",
                str(db),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + process.stdout.read()
        return process, f"http://127.0.0.1:{found.group(1)}"

    order = order_of(study_dir, "k1")
    process, url = serve()
    try:
        browser = Client(url)
        browser.start("k1")
        for stimulus in order[:2]:
            assert browser.post("/rate/k1", {"stimulus": stimulus, "rating": "-1"})[0] == 200
    finally:
        process.kill()  # SIGKILL: no clean shutdown
        process.wait(30)
    process, browser.url = serve()
    try:
        status, text = browser.get("/rate/k1")
        assert status == 200 and "3 of 20" in text
        assert browser.post("/rate/k1", {"stimulus": order[2], "rating": "2"})[0] == 200
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: a clean exit
        assert process.wait(30) == 0
        process.stdout.close()
    assert [(r[1], r[5]) for r in rows(db)] == list(zip(order[:3], (-1, -1, 2)))


# ------------------------------------------------------------------------------ storage and export


def test_export_writes_every_rating(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    connection = study.connect(db)
    manifest = study.load_study(study_dir)[1].to_dict("records")
    assert study.store_rating(connection, "a", manifest[0], 1)
    assert not study.store_rating(connection, "a", manifest[0], -1)  # once per (rater, stimulus)
    assert study.store_rating(connection, "b", manifest[0], -2)
    assert study.stored_rating(connection, "a", manifest[0]["stimulus"]) == 1
    assert study.stored_rating(connection, "c", manifest[0]["stimulus"]) is None
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


def test_ids_that_look_missing_survive_export_and_read_back(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    stimulus = study.load_study(study_dir)[1].to_dict("records")[0]
    raters = ["NA", "null", "nan", "None", "NULL", "alice"]
    connection = study.connect(db)
    for rater in raters:
        assert study.store_rating(connection, rater, stimulus, 1)
    assert study.store_rating(connection, "alice", {**stimulus, "stimulus": "NA"}, -1)
    connection.close()
    study.export_responses(db, tmp_path / "out.csv")
    table = study.read_responses(tmp_path / "out.csv")
    assert table["rater"].nunique() == 6 and table["rater"].tolist() == [*raters, "alice"]
    assert table["stimulus"].tolist() == [stimulus["stimulus"]] * 6 + ["NA"]
    assert not table.isna().any().any()
    assert table["rating"].tolist() == [1] * 6 + [-1]
    # and the analysis counts every one of them: six raters, each with a mean and a place in alpha
    from gradcam_core.tasks import user_study

    signed = user_study.signed_ratings(table, stimulus["right_model"])
    assert sorted(user_study.rater_means(signed).index) == sorted(raters)
    assert user_study.per_rater_test(signed)["raters"].iloc[0] == 6


def test_export_neutralises_spreadsheet_formulas(study_dir, tmp_path):
    db = tmp_path / "responses.sqlite"
    stimulus = {
        "stimulus": '=HYPERLINK("http://evil.example","x")',
        "method": "+cmd|' /C calc'!A0",
        "left_model": "@SUM(1+1)",
        "right_model": "-2+3",
    }
    connection = study.connect(db)
    study.store_rating(connection, "=1+1", stimulus, -1)
    study.store_rating(connection, "\tTAB", {**stimulus, "stimulus": "\rCR"}, 2)
    study.store_rating(connection, "'quoted", {**stimulus, "stimulus": "plain"}, 0)
    connection.close()
    study.export_responses(db, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as handle:
        cells = list(csv.reader(handle))
    header, body = cells[0], cells[1:]
    for row in body:
        for column, cell in zip(header, row):
            if column == "rating":
                assert cell in ("-1", "2", "0")  # a number, not escaped
            else:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    assert body[0][:2] == ["'=1+1", '\'=HYPERLINK("http://evil.example","x")']
    table = study.read_responses(tmp_path / "out.csv")  # the escape is undone on reading
    assert table["rater"].tolist() == ["=1+1", "\tTAB", "'quoted"]
    assert table["stimulus"].tolist() == [stimulus["stimulus"], "\rCR", "plain"]
    assert set(table["method"]) == {stimulus["method"]} and set(table["right_model"]) == {"-2+3"}
    assert table["rating"].tolist() == [-1, 2, 0]


# ------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("port", ["-1", "99999", "http"])
def test_a_bad_port_is_one_line_and_status_2(study_dir, tmp_path, capsys, port):
    with pytest.raises(SystemExit) as exit_:
        study.main(["serve", str(study_dir), "--db", str(tmp_path / "r.sqlite"), "--port", port])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and port in err


def test_unusable_files_are_named_in_one_line_and_status_2(study_dir, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("this is not an SQLite database, just some text that is long enough\n" * 20)
    assert study.main(["serve", str(study_dir), "--db", str(text), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(text) in err and "responses database" in err
    assert study.main(["export", "--db", str(text), "--out", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(text) in err
    db = tmp_path / "responses.sqlite"
    study.connect(db).close()
    unwritable = text / "out.csv"  # a folder that is a file
    assert study.main(["export", "--db", str(db), "--out", str(unwritable)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(unwritable) in err
    absent = tmp_path / "absent.txt"
    assert (
        study.main(["serve", str(study_dir), "--db", str(db), "--port", "0", "--invitations", str(absent)])
        == 2
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(absent) in err


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


def test_status_counts_ratings_completion_and_time_per_rating(study_dir, tmp_path, capsys):
    db = tmp_path / "responses.sqlite"
    connection = study.connect(db)
    manifest = study.load_study(study_dir)[1].to_dict("records")
    for stimulus in manifest:
        study.store_rating(connection, "done", stimulus, 1)
    study.store_rating(connection, "started", manifest[0], 0)
    # times set by hand: "done" rated every 4 s; "started" once
    connection.execute(
        "UPDATE responses SET created_utc = "
        "strftime('%Y-%m-%dT%H:%M:%fZ', '2026-11-27 10:00:00', '+' || (4 * id) || ' seconds')"
    )
    connection.close()
    status = study.rating_status(db, study_dir)
    assert status["rater"].tolist() == ["done", "started"] and status["ratings"].tolist() == [
        len(manifest),
        1,
    ]
    assert status["completion"].tolist() == [100.0, pytest.approx(100 / len(manifest))]
    assert status["seconds per rating"].iloc[0] == pytest.approx(4.0) and np.isnan(
        status["seconds per rating"].iloc[1]
    )
    assert np.isnan(study.rating_status(db)["completion"]).all()
    assert study.main(["status", "--db", str(db), "--study-dir", str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert f"2 raters, {len(manifest) + 1} ratings, 1 finished all {len(manifest)} stimuli" in out
    assert study.main(["status", "--db", str(tmp_path / "absent.sqlite")]) == 2
    assert "absent.sqlite: no such responses database" in capsys.readouterr().err
