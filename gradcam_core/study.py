"""The survey of Task 4 (the trust user study of paper Sec. 5.2): the study folder it serves,
the web app that stores ratings, their export, and the responses file it writes.

The paper showed people the explanations of two models (VGG-16 and AlexNet) for an image both
classify correctly and asked which model is more trustworthy, on a -2..+2 scale. Here:

- a study folder (written by :func:`gradcam_core.tasks.user_study.make_stimuli`) holds, for each
  chosen image and method, the two models' explanations as PNGs, left/right randomised with a
  seed, ``stimuli.csv`` recording which model is on which side, and ``study.json``;
- ``python -m gradcam_core.study serve STUDY_DIR --db responses.sqlite`` serves the survey
  (Flask): a start page asking for a rater id, one page per stimulus with progress, a thank-you
  page. Ratings go to SQLite in WAL mode, one row per (rater, stimulus), through parameterised
  SQL only; the state lives in the database, so a rater resumes after closing the browser and a
  restarted server loses nothing. ``export`` writes the ratings to CSV, which
  :func:`read_responses` reads back for the analysis (:mod:`gradcam_core.tasks.user_study`).

The survey is meant to face the internet (behind a TLS reverse proxy, see README): it runs on
waitress (bounded threads, idle connections closed after a timeout, a connection limit); each
rater gets a signed session cookie (``SameSite=Strict``, ``HttpOnly``) bound to their id when
they start; every form carries a per-session CSRF token and every POST must come from the
survey's own origin; responses carry CSP and anti-framing headers; only the images named in the
study's manifest are served, never through a symlink; an optional invitation list restricts
who may take part.

Rating scale, as the survey shows it: -2 the left model is much more trustworthy, -1 somewhat
more, 0 equally, +1 the right model somewhat more, +2 much more.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import re
import secrets
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .files import atomic_file

RATINGS = (-2, -1, 0, 1, 2)
RATING_LABELS = {
    -2: "Left is much more trustworthy",
    -1: "Left is somewhat more trustworthy",
    0: "Equally trustworthy",
    1: "Right is somewhat more trustworthy",
    2: "Right is much more trustworthy",
}
QUESTION = (
    "Both robots predicted the class below correctly. Judging only from the explanations of what "
    "they looked at, which robot would you trust more to classify new images?"
)
STUDY_METHODS = ("guided-backprop", "guided-grad-cam")
#: A rater id, matched with ``fullmatch``: 1-64 letters, digits, ``.``, ``_``, ``-``, starting with a
#: letter or digit (so never ``.``, ``..``, ``-x`` or an id with a trailing newline).
RATER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RATER_ID_RULE = "rater id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
MANIFEST = "stimuli.csv"
STUDY_FILE = "study.json"
MANIFEST_COLUMNS = [
    "stimulus",
    "image",
    "class_name",
    "method",
    "left_model",
    "right_model",
    "accurate_side",
    "original_file",
    "left_file",
    "right_file",
]
#: The manifest's columns naming the image files the survey shows (the only files it serves).
IMAGE_COLUMNS = ("original_file", "left_file", "right_file")


class StudyError(ValueError):
    """A study folder or responses file that cannot be used, naming the file."""


def valid_rater_id(text: object) -> bool:
    """True when ``text`` is a whole rater id (:data:`RATER_ID`), nothing before or after it."""
    return isinstance(text, str) and RATER_ID.fullmatch(text) is not None


# --------------------------------------------------------------------------------------------
# Study folder
# --------------------------------------------------------------------------------------------


def load_study(study_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """``(study.json, stimuli.csv)`` of a study folder, checked. Every manifest cell is read as
    the text it holds (an id such as ``NA`` stays ``"NA"``, never NaN)."""
    study_dir = Path(study_dir)
    for name in (STUDY_FILE, MANIFEST):
        if not (study_dir / name).is_file():
            maker = "gradcam_core.tasks.user_study.make_stimuli (notebook 04)"
            raise StudyError(f"{study_dir / name}: missing; is {study_dir} a study folder made by {maker}?")
    try:
        info = json.loads((study_dir / STUDY_FILE).read_text())
    except json.JSONDecodeError as err:
        raise StudyError(f"{study_dir / STUDY_FILE}: not valid JSON ({err})") from err
    manifest = pd.read_csv(study_dir / MANIFEST, dtype=str, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(manifest.columns)
    if missing:
        raise StudyError(f"{study_dir / MANIFEST}: missing column(s) {sorted(missing)}")
    if manifest["stimulus"].duplicated().any():
        raise StudyError(f"{study_dir / MANIFEST}: duplicate stimulus ids")
    return info, manifest


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rater TEXT NOT NULL,
    stimulus TEXT NOT NULL,
    method TEXT NOT NULL,
    left_model TEXT NOT NULL,
    right_model TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating BETWEEN -2 AND 2),
    created_utc TEXT NOT NULL,
    UNIQUE (rater, stimulus)
)
"""


def connect(db_path: str | Path) -> sqlite3.Connection:
    """A connection to the responses database (created if needed) in WAL mode, waiting up to
    30 s for a lock rather than failing under concurrent writers. A file that SQLite cannot use
    (not a database, an unopenable path) is a :class:`StudyError` naming it."""
    try:
        connection = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(SCHEMA)
        except BaseException:
            connection.close()
            raise
    except sqlite3.DatabaseError as err:
        raise StudyError(f"{db_path}: cannot be used as the responses database ({err})") from err
    return connection


def store_rating(connection: sqlite3.Connection, rater: str, stimulus: dict, rating: int) -> bool:
    """Insert one rating (parameterised SQL); True when it was stored. A second rating of the
    same stimulus by the same rater (a double click, a resent form, a changed answer) stores
    nothing and returns False: the first answer is the one kept."""
    cursor = connection.execute(
        "INSERT INTO responses (rater, stimulus, method, left_model, right_model, rating, created_utc) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rater, stimulus) DO NOTHING",
        (
            rater,
            stimulus["stimulus"],
            stimulus["method"],
            stimulus["left_model"],
            stimulus["right_model"],
            rating,
            datetime.now(UTC).isoformat(timespec="milliseconds"),
        ),
    )
    return cursor.rowcount == 1


def stored_rating(connection: sqlite3.Connection, rater: str, stimulus_id: str) -> int | None:
    """The rating ``rater`` gave ``stimulus_id``, or None when there is none."""
    row = connection.execute(
        "SELECT rating FROM responses WHERE rater = ? AND stimulus = ?", (rater, stimulus_id)
    ).fetchone()
    return None if row is None else int(row[0])


def rated_stimuli(connection: sqlite3.Connection, rater: str) -> set[str]:
    """The ids of the stimuli ``rater`` has rated."""
    return {row[0] for row in connection.execute("SELECT stimulus FROM responses WHERE rater = ?", (rater,))}


#: The text columns of a responses CSV (the rating is the one number).
TEXT_COLUMNS = ("rater", "stimulus", "method", "left_model", "right_model", "created_utc")
#: First characters that make a spreadsheet read a cell as a formula (and the quote that escapes them).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """``value`` safe to open in a spreadsheet: a string starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return (a formula to Excel, LibreOffice, Sheets) gets a leading ``'``
    (which they show as text); so does one already starting with ``'``, so that
    :func:`restore_formula` undoes exactly this. Anything else is returned unchanged."""
    if isinstance(value, str) and value.startswith((*_FORMULA_STARTS, "'")):
        return "'" + value
    return value


def restore_formula(value: object) -> object:
    """The inverse of :func:`neutralise_formula`: one leading ``'`` removed where it escapes."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r'":
        return value[1:]
    return value


def export_responses(db_path: str | Path, out_csv: str | Path) -> int:
    """All ratings to a CSV (written atomically, in storage order, text cells quoted); returns the
    number of rows. Text cells that a spreadsheet would run as a formula are escaped
    (:func:`neutralise_formula`; :func:`read_responses` undoes it); ratings stay unquoted integers.
    A missing or unusable database and an unwritable ``out_csv`` are :class:`StudyError` naming
    the path."""
    if not Path(db_path).is_file():
        raise StudyError(f"{db_path}: no such responses database")
    connection = connect(db_path)
    try:
        table = pd.read_sql_query(
            "SELECT rater, stimulus, method, left_model, right_model, rating, created_utc "
            "FROM responses ORDER BY id",
            connection,
        )
    finally:
        connection.close()
    for column in TEXT_COLUMNS:
        table[column] = table[column].astype(object).map(neutralise_formula)
    try:
        with atomic_file(out_csv) as handle:  # every text cell quoted: a CR or LF inside one stays inside
            table.to_csv(handle, index=False, quoting=csv.QUOTE_NONNUMERIC)
    except OSError as err:
        raise StudyError(f"{out_csv}: cannot write the responses CSV ({err.strerror or err})") from err
    return len(table)


def rater_order(stimuli: list[str], rater: str) -> list[str]:
    """The order a rater sees the stimuli in: shuffled with a seed derived from the rater id,
    so it is the same after a restart or on another device."""
    order = list(stimuli)
    random.Random(int(hashlib.sha256(rater.encode()).hexdigest()[:16], 16)).shuffle(order)
    return order


# --------------------------------------------------------------------------------------------
# Web app
# --------------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
.pair { display: flex; gap: 24px; justify-content: center; margin: 1em 0; }
figure { margin: 0; text-align: center; } img { width: 300px; height: 300px; border: 1px solid #999; }
.choices { display: flex; gap: 8px; justify-content: center; flex-wrap: wrap; }
.choices button { padding: 0.6em 0.9em; font-size: 0.95em; cursor: pointer; }
.progress { color: #555; }
</style></head><body>{{ body|safe }}</body></html>"""

_START = """<h1>Which robot do you trust more?</h1>
<p>You will see {{ total }} pairs of explanations. Two robots looked at the same photo and both named it
correctly; each picture shows what one robot based its decision on. Tell us which robot you would trust
more. There are no right answers. You can stop at any time and continue later with the same id.</p>
<form method="post" action="{{ url_for('start') }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<label for="rater">Your rater id (letters, digits, . _ -, starting with a letter or digit):</label>
<input id="rater" name="rater" required maxlength="64" pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}">
<button id="begin" type="submit">Begin</button></form>"""

_RATE = """<p class="progress" id="progress">{{ position }} of {{ total }}</p>
<h2>Class: <span id="class-name">{{ s.class_name }}</span></h2>
<figure><img src="{{ url_for('image', name=s.original_file) }}" alt="the photo">
<figcaption>The photo</figcaption></figure>
<div class="pair">
<figure><img id="left" src="{{ url_for('image', name=s.left_file) }}" alt="left explanation">
<figcaption>Robot on the left</figcaption></figure>
<figure><img id="right" src="{{ url_for('image', name=s.right_file) }}" alt="right explanation">
<figcaption>Robot on the right</figcaption></figure>
</div>
<p>{{ question }}</p>
<form method="post" action="{{ url_for('rate', rater=rater) }}" class="choices">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="stimulus" value="{{ s.stimulus }}">
{% for value, label in choices %}<button type="submit" name="rating" value="{{ value }}"
id="rating{{ value }}">{{ '%+d' % value if value else '0' }}: {{ label }}</button>{% endfor %}
</form>"""

_CONFLICT = """<h1>Already rated</h1>
<p id="conflict">You had already rated this pair ({{ '%+d' % kept if kept else '0' }}: {{ label }}).
The earlier answer was kept; an answer cannot be changed.</p>
<p><a id="continue" href="{{ url_for('rate', rater=rater) }}">Continue with the next pair</a></p>"""

_THANKS = """<h1>Thank you!</h1><p id="done">You rated all {{ total }} pairs, {{ rater }}.</p>"""

#: The environment variable holding the key that signs the raters' session cookies.
SECRET_ENV = "GRADCAM_STUDY_SECRET"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: Sent with every response of the survey.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def secret_key(db_path: str | Path) -> str:
    """The key that signs the raters' sessions: :data:`SECRET_ENV` when set (non-empty); else the
    key kept in ``<db_path>.secret`` beside the database, created the first time (256 random
    bits, mode 0600, written whole before it appears), so a restarted server keeps every session
    valid. A key file readable by others is narrowed to 0600; one that cannot be made or read,
    or is too short, is a :class:`StudyError` naming it."""
    from_env = os.environ.get(SECRET_ENV, "")
    if from_env:
        return from_env
    path = Path(f"{db_path}.secret")
    try:
        if not path.exists():
            part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
            descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_hex(32) + "\n")
                with contextlib.suppress(FileExistsError):  # another server made it first: use that one
                    os.link(part, path)
            finally:
                part.unlink(missing_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        key = path.read_text().strip()
    except OSError as err:
        raise StudyError(f"{path}: cannot make or read the session key file ({err.strerror or err})") from err
    if len(key) < 32:
        raise StudyError(f"{path}: the session key is empty or too short; delete the file to make a new one")
    return key


def foreign_origin(headers, scheme: str, host: str) -> str | None:
    """Why a POST with these request ``headers``, received as ``scheme://host``, does not come
    from the survey's own pages; None when it may. An ``Origin`` header must be this origin;
    ``Sec-Fetch-Site`` must be ``same-origin`` or ``none`` (typed by the user); a request with
    neither (not sent by a browser) is left to the CSRF token."""
    own = f"{scheme}://{host}".lower()
    origin = headers.get("Origin")
    if origin is not None and origin.lower() != own:
        return (
            f"origin {origin[:100]!r} is not this survey's {own!r} (behind a TLS proxy: start the "
            "server with --trusted-proxy)"
        )
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site {site[:20]!r}: the form was not sent from this survey's own pages"
    return None


def read_invitations(path: str | Path) -> set[str]:
    """The rater ids of an invitation file: one per line; blank lines and ``#`` comments are
    skipped. A missing file or an invalid id is a :class:`StudyError` naming the file (and line)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise StudyError(f"{path}: cannot read the invitations ({err.strerror or err})") from err
    invited = set()
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not valid_rater_id(text):
            raise StudyError(f"{path}:{number}: {text[:70]!r}: {RATER_ID_RULE}")
        invited.add(text)
    if not invited:
        raise StudyError(f"{path}: no rater ids (one per line)")
    return invited


def create_app(study_dir: str | Path, db_path: str | Path, invitations=None):
    """The survey as a Flask app over ``study_dir`` (made by :func:`make_stimuli`), storing
    ratings in the SQLite file ``db_path``.

    Guarantees: ``POST /start`` binds the browser's signed session (key: :func:`secret_key`;
    cookie ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS) to one valid rater id -- one
    of ``invitations`` (ids) when given, else 403; ``/rate/<rater>`` answers only the rater bound
    to the session (else 403); every POST must carry the session's CSRF token and come from this
    origin (:func:`foreign_origin`), else 403 and nothing is stored. A rating is stored once per
    rater and stimulus: resending the stored answer leads on to the next pair; a different answer
    for a rated pair is 409 Conflict and the earlier answer is kept. Only the images the manifest
    names are served, from inside the study's ``images`` folder and not through a symlink (else
    404). Every response carries :data:`SECURITY_HEADERS`; errors are one plain-text line."""
    from flask import Flask, abort, redirect, render_template_string, request, send_file, session, url_for
    from flask.sessions import SecureCookieSessionInterface

    class Sessions(SecureCookieSessionInterface):
        """Signed cookie sessions, marked ``Secure`` whenever the request came over HTTPS."""

        def get_cookie_secure(self, app) -> bool:
            return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    study_dir = Path(study_dir).resolve()
    images = (study_dir / "images").resolve()
    info, manifest = load_study(study_dir)
    stimuli = {row["stimulus"]: row for row in manifest.to_dict("records")}
    order = list(stimuli)
    served = {name for column in IMAGE_COLUMNS for name in manifest[column] if name}
    invited = None if invitations is None else set(invitations)
    if invited is not None:
        bad = sorted(str(r) for r in invited if not valid_rater_id(r))
        if bad:
            raise StudyError(f"invitations: {bad[0][:70]!r}: {RATER_ID_RULE}")
    connect(db_path).close()  # create the table and switch the file to WAL once
    app = Flask(__name__, static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=16 * 1024,
        SECRET_KEY=secret_key(db_path),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    app.session_interface = Sessions()

    def page(title: str, body: str, **context):
        return render_template_string(_PAGE, title=title, body=render_template_string(body, **context))

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    def checked_rater(rater: str | None) -> str:
        if not valid_rater_id(rater):
            abort(400, description=RATER_ID_RULE)
        if invited is not None and rater not in invited:
            abort(403, description=f"rater id {rater!r} is not invited to this study")
        return rater

    @app.before_request
    def guard_posts():
        if request.method != "POST":
            return
        why = foreign_origin(request.headers, request.scheme, request.host)
        if why:
            abort(403, description=why)
        sent, expected = request.form.get("csrf_token", ""), session.get("csrf", "")
        if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            abort(
                403,
                description="the form's token does not match this browser's session (cookies must be "
                "enabled); open the start page again",
            )

    @app.after_request
    def security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def error(err):
        return (
            f"{err.code} {err.name}: {err.description}\n",
            err.code,
            {"Content-Type": "text/plain; charset=utf-8"},
        )

    @app.get("/")
    def index():
        return page("Trust study", _START, total=len(order), csrf=csrf_token())

    @app.post("/start")
    def start():
        rater = checked_rater(request.form.get("rater", ""))
        session.clear()  # a fresh session (and token) for this rater
        session["rater"] = rater
        session["csrf"] = secrets.token_urlsafe(32)
        return redirect(url_for("rate", rater=rater), code=303)

    @app.route("/rate/<rater>", methods=["GET", "POST"])
    def rate(rater):
        rater = checked_rater(rater)
        if session.get("rater") != rater:
            why = f"this browser has not started as {rater!r}; enter your id on the start page"
            abort(403, description=why)
        connection = connect(db_path)
        try:
            if request.method == "POST":
                stimulus_id = request.form.get("stimulus", "")
                if stimulus_id not in stimuli:
                    abort(404, description=f"unknown stimulus {stimulus_id[:40]!r}")
                text = request.form.get("rating", "")
                if not re.fullmatch(r"[+-]?\d{1,2}", text) or int(text) not in RATINGS:
                    abort(400, description=f"rating must be one of -2, -1, 0, 1, 2; got {text[:20]!r}")
                rating = int(text)
                if not store_rating(connection, rater, stimuli[stimulus_id], rating):
                    kept = stored_rating(connection, rater, stimulus_id)
                    if kept is not None and kept != rating:
                        label = RATING_LABELS[kept]
                        return page("Already rated", _CONFLICT, rater=rater, kept=kept, label=label), 409
                return redirect(url_for("rate", rater=rater), code=303)
            done = rated_stimuli(connection, rater)
        finally:
            connection.close()
        pending = [s for s in rater_order(order, rater) if s not in done]
        if not pending:
            return redirect(url_for("thanks", rater=rater), code=303)
        return page(
            f"{len(done) + 1} of {len(order)}",
            _RATE,
            s=stimuli[pending[0]],
            rater=rater,
            csrf=csrf_token(),
            position=len(done) + 1,
            total=len(order),
            question=info.get("question", QUESTION),
            choices=[(v, RATING_LABELS[v]) for v in RATINGS],
        )

    @app.get("/thanks/<rater>")
    def thanks(rater):
        return page("Thank you", _THANKS, rater=checked_rater(rater), total=len(order))

    @app.get("/images/<path:name>")
    def image(name):
        if name not in served:
            abort(404, description="no such image in this study")
        path = images / name
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            abort(404, description="no such image in this study")
        if path.is_symlink() or not resolved.is_relative_to(images) or not resolved.is_file():
            abort(404, description="no such image in this study")
        return send_file(resolved)

    return app


class SurveyServer:
    """The survey on waitress, with the interface of the standard library's servers:
    :attr:`server_port`, :meth:`serve_forever` (runs until :meth:`shutdown` is called from
    another thread, or Ctrl-C), :meth:`shutdown` (stops the loop and waits for it) and
    :meth:`server_close` (stops the worker threads, closes every socket)."""

    def __init__(self, server):
        from waitress import wasyncore

        self._server = server
        self._loop = wasyncore
        # one listening socket: a TcpWSGIServer (its map in ``_map``); several: a MultiSocketServer
        self._map = server.map if hasattr(server, "effective_listen") else server._map
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False

    @property
    def server_port(self) -> int:
        """The port it listens on (the free one chosen for port 0)."""
        listen = getattr(self._server, "effective_listen", None)
        return int(listen[0][1] if listen else self._server.effective_port)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or until a KeyboardInterrupt, which propagates)."""
        self._serving = True
        adjustments = self._server.adj
        try:
            while not self._stop.is_set() and self._map:
                self._loop.loop(
                    timeout=adjustments.asyncore_loop_timeout,
                    map=self._map,
                    use_poll=adjustments.asyncore_use_poll,
                    count=1,
                )
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait (up to 30 s) until it has returned."""
        self._stop.set()
        for dispatcher in list(self._map.values()):  # wake the loop now rather than at its timeout
            if hasattr(dispatcher, "pull_trigger"):
                with contextlib.suppress(OSError):
                    dispatcher.pull_trigger()
                break
        if self._serving:
            self._stopped.wait(30)

    def server_close(self) -> None:
        """Stop the worker threads and close the listening socket and every connection."""
        self._server.task_dispatcher.shutdown(timeout=5)
        self._loop.close_all(self._map)


def make_server(
    study_dir,
    db_path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    invitations=None,
    threads: int = 8,
    channel_timeout: int = 30,
    connection_limit: int = 100,
    trusted_proxy: str | None = None,
) -> SurveyServer:
    """The survey (:func:`create_app`) on a production WSGI server (waitress): at most
    ``threads`` requests run at once, at most ``connection_limit`` connections are open (more
    wait in the listen backlog), a connection idle for ``channel_timeout`` seconds (a client
    that sends half a request and stops) is closed. With ``trusted_proxy`` (the address of a TLS
    reverse proxy), its ``X-Forwarded-Proto``/``-Host``/``-For`` headers are believed; without
    it they are removed. A host/port that cannot be listened on is a :class:`StudyError`."""
    from waitress import create_server

    app = create_app(study_dir, db_path, invitations=invitations)
    options = {
        "host": host,
        "port": port,
        "threads": threads,
        "channel_timeout": channel_timeout,
        "cleanup_interval": max(1, min(30, channel_timeout // 2)),
        "connection_limit": connection_limit,
        "asyncore_use_poll": True,  # no select() limit of 1024 descriptors
        "max_request_header_size": 64 * 1024,
        "max_request_body_size": 1024 * 1024,
        "clear_untrusted_proxy_headers": True,
        "ident": "gradcam-study",
    }
    if trusted_proxy:
        options["trusted_proxy"] = trusted_proxy
        options["trusted_proxy_headers"] = {"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"}
    try:
        return SurveyServer(create_server(app, **options))
    except (OSError, ValueError) as err:
        raise StudyError(f"cannot serve on {host}:{port} ({getattr(err, 'strerror', None) or err})") from err


# --------------------------------------------------------------------------------------------
# Responses file
# --------------------------------------------------------------------------------------------

RESPONSE_COLUMNS = ["rater", "stimulus", "method", "left_model", "right_model", "rating"]


def read_responses(path: str | Path) -> pd.DataFrame:
    """A responses CSV (as :func:`export_responses` writes it), checked: every column but the
    rating is read as the text it holds (ids such as ``NA``, ``null`` or ``None`` stay text, never
    NaN), with the formula escape of the export undone (:func:`restore_formula`); ``rating``
    is an integer in -2..+2, else a :class:`StudyError` naming the file, the value and the row."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no such responses file")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(RESPONSE_COLUMNS) - set(table.columns)
    if missing:
        raise StudyError(f"{path}: missing column(s) {sorted(missing)}")
    text = table["rating"].astype(object)
    numbers = pd.to_numeric(text.where(text.str.fullmatch(r"\s*[+-]?\d{1,2}\s*")), errors="coerce")
    bad = ~numbers.isin(RATINGS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 2  # the header is line 1
        value = text[bad].iloc[0] or "''"
        raise StudyError(f"{path}: rating {value} outside -2..+2 (row {row})")
    table["rating"] = numbers.astype(int)
    for column in TEXT_COLUMNS:
        if column in table.columns:
            table[column] = table[column].map(restore_formula)
    return table


def rating_status(db_path: str | Path, study_dir: str | Path | None = None) -> pd.DataFrame:
    """Where a running study stands, per rater: ``ratings`` stored, ``completion`` in % of the
    study's stimuli (given ``study_dir``; NaN without), the first and last rating (UTC) and the
    median ``seconds per rating`` between consecutive ratings (NaN with one rating). Read-only;
    a missing or unreadable database is a :class:`StudyError` naming it."""
    if not Path(db_path).is_file():
        raise StudyError(f"{db_path}: no such responses database")
    connection = connect(db_path)
    try:
        table = pd.read_sql_query("SELECT rater, created_utc FROM responses ORDER BY id", connection)
    finally:
        connection.close()
    total = len(load_study(study_dir)[1]) if study_dir is not None else None
    rows = []
    for rater, group in table.groupby("rater", sort=False):
        times = pd.to_datetime(group["created_utc"], utc=True, format="ISO8601").sort_values()
        gaps = times.diff().dt.total_seconds().dropna()
        rows.append(
            {
                "rater": rater,
                "ratings": len(group),
                "completion": 100 * len(group) / total if total else np.nan,
                "first": times.iloc[0].strftime("%Y-%m-%d %H:%M"),
                "last": times.iloc[-1].strftime("%Y-%m-%d %H:%M"),
                "seconds per rating": float(gaps.median()) if len(gaps) else np.nan,
            }
        )
    columns = ["rater", "ratings", "completion", "first", "last", "seconds per rating"]
    return pd.DataFrame(rows, columns=columns)


def _print_status(status: pd.DataFrame, stimuli: int | None) -> None:
    complete = int((status["completion"] >= 100).sum()) if stimuli else 0
    shown = status.assign(
        completion=status["completion"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.0f} %"),
        **{
            "seconds per rating": status["seconds per rating"].map(
                lambda v: "n/a" if pd.isna(v) else f"{v:.1f}"
            )
        },
    )
    print(shown.to_string(index=False) if len(shown) else "no ratings yet")
    finished = f", {complete} finished all {stimuli} stimuli" if stimuli else ""
    print(f"{len(status)} raters, {int(status['ratings'].sum())} ratings{finished}")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    """``python -m gradcam_core.study serve|status|export``; returns the exit status (2 and one line on
    stderr for a bad argument or an unusable file, naming it)."""
    parser, commands = cli.command_parser("gradcam_core.study", __doc__)
    serve = commands.add_parser("serve", help="serve the survey over a study folder")
    serve.add_argument("study_dir")
    serve.add_argument(
        "--db", default="responses.sqlite", help="SQLite file for the ratings (created if needed)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=cli.port_number, default=8000)
    serve.add_argument(
        "--invitations", metavar="FILE", help="accept only the rater ids listed in FILE (one per line)"
    )
    serve.add_argument("--threads", type=cli.positive_int, default=8, help="requests handled at once")
    serve.add_argument(
        "--channel-timeout",
        type=cli.positive_int,
        default=30,
        metavar="SECONDS",
        help="close a connection idle this long",
    )
    serve.add_argument("--connection-limit", type=cli.positive_int, default=100)
    serve.add_argument(
        "--trusted-proxy",
        metavar="ADDRESS",
        help="address of the TLS reverse proxy whose X-Forwarded-Proto/-Host/-For headers are trusted",
    )
    status = commands.add_parser("status", help="ratings per rater, completion and time per rating")
    status.add_argument("--db", default="responses.sqlite")
    status.add_argument("--study-dir", default=None, help="the study folder (for completion)")
    export = commands.add_parser("export", help="write the stored ratings to a CSV")
    export.add_argument("--db", default="responses.sqlite")
    export.add_argument("--out", default="responses.csv")
    args = parser.parse_args(argv)
    return cli.run(lambda: _command(args), (StudyError,))


def _command(args) -> int:
    if args.command == "serve":
        server = make_server(
            args.study_dir,
            args.db,
            args.host,
            args.port,
            invitations=read_invitations(args.invitations) if args.invitations else None,
            threads=args.threads,
            channel_timeout=args.channel_timeout,
            connection_limit=args.connection_limit,
            trusted_proxy=args.trusted_proxy,
        )
        address = f"http://{args.host}:{server.server_port}/"
        print(f"serving {args.study_dir} on {address} , ratings -> {args.db}", flush=True)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                server.serve_forever()
        finally:
            server.server_close()
        return 0
    if args.command == "status":
        stimuli = len(load_study(args.study_dir)[1]) if args.study_dir else None
        _print_status(rating_status(args.db, args.study_dir), stimuli)
        return 0
    count = export_responses(args.db, args.out)
    print(f"{count} ratings -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
