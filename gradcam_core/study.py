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

Rating scale, as the survey shows it: -2 the left model is much more trustworthy, -1 somewhat
more, 0 equally, +1 the right model somewhat more, +2 much more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .results import write_table

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
RATER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
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


class StudyError(ValueError):
    """A study folder or responses file that cannot be used, naming the file."""


# --------------------------------------------------------------------------------------------
# Study folder
# --------------------------------------------------------------------------------------------


def load_study(study_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """``(study.json, stimuli.csv)`` of a study folder, checked."""
    study_dir = Path(study_dir)
    for name in (STUDY_FILE, MANIFEST):
        if not (study_dir / name).is_file():
            maker = "gradcam_core.tasks.user_study.make_stimuli (notebook 04)"
            raise StudyError(f"{study_dir / name}: missing; is {study_dir} a study folder made by {maker}?")
    try:
        info = json.loads((study_dir / STUDY_FILE).read_text())
    except json.JSONDecodeError as err:
        raise StudyError(f"{study_dir / STUDY_FILE}: not valid JSON ({err})") from err
    manifest = pd.read_csv(study_dir / MANIFEST, dtype=str)
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
    30 s for a lock rather than failing under concurrent writers."""
    connection = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(SCHEMA)
    return connection


def store_rating(connection: sqlite3.Connection, rater: str, stimulus: dict, rating: int) -> bool:
    """Insert one rating (parameterised SQL). A second rating of the same stimulus by the same
    rater (a double click, a resent form) is ignored: returns False."""
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


def rated_stimuli(connection: sqlite3.Connection, rater: str) -> set[str]:
    return {row[0] for row in connection.execute("SELECT stimulus FROM responses WHERE rater = ?", (rater,))}


def export_responses(db_path: str | Path, out_csv: str | Path) -> int:
    """All ratings to a CSV (written atomically); returns the number of rows."""
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
    write_table(table, out_csv)
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
<label for="rater">Your rater id (letters, digits, . _ -):</label>
<input id="rater" name="rater" required maxlength="64" pattern="[A-Za-z0-9_.\\-]{1,64}">
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
<input type="hidden" name="stimulus" value="{{ s.stimulus }}">
{% for value, label in choices %}<button type="submit" name="rating" value="{{ value }}"
id="rating{{ value }}">{{ '%+d' % value if value else '0' }}: {{ label }}</button>{% endfor %}
</form>"""

_THANKS = """<h1>Thank you!</h1><p id="done">You rated all {{ total }} pairs, {{ rater }}.</p>"""


def create_app(study_dir: str | Path, db_path: str | Path):
    """The survey as a Flask app over ``study_dir`` (made by :func:`make_stimuli`), storing
    ratings in the SQLite file ``db_path``."""
    from flask import Flask, abort, redirect, render_template_string, request, send_from_directory, url_for

    study_dir = Path(study_dir).resolve()
    info, manifest = load_study(study_dir)
    stimuli = {row["stimulus"]: row for row in manifest.to_dict("records")}
    order = list(stimuli)
    connect(db_path).close()  # create the table and switch the file to WAL once
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024

    def page(title: str, body: str, **context):
        return render_template_string(_PAGE, title=title, body=render_template_string(body, **context))

    def checked_rater(rater: str | None) -> str:
        if not rater or not RATER_ID.match(rater):
            abort(400, description="rater id must be 1-64 letters, digits, '.', '_' or '-'")
        return rater

    @app.errorhandler(400)
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
        return page("Trust study", _START, total=len(order))

    @app.post("/start")
    def start():
        return redirect(url_for("rate", rater=checked_rater(request.form.get("rater", "").strip())), code=303)

    @app.route("/rate/<rater>", methods=["GET", "POST"])
    def rate(rater):
        rater = checked_rater(rater)
        connection = connect(db_path)
        try:
            if request.method == "POST":
                stimulus_id = request.form.get("stimulus", "")
                if stimulus_id not in stimuli:
                    abort(404, description=f"unknown stimulus {stimulus_id[:40]!r}")
                text = request.form.get("rating", "")
                if not re.fullmatch(r"[+-]?\d{1,2}", text) or int(text) not in RATINGS:
                    abort(400, description=f"rating must be one of -2, -1, 0, 1, 2; got {text[:20]!r}")
                store_rating(connection, rater, stimuli[stimulus_id], int(text))
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
        return send_from_directory(study_dir / "images", name)  # werkzeug's safe_join: no traversal

    return app


def make_server(study_dir, db_path, host: str = "127.0.0.1", port: int = 8000):
    """A threaded WSGI server for the survey (``serve_forever()`` / ``shutdown()``)."""
    from werkzeug.serving import make_server as werkzeug_server

    return werkzeug_server(host, port, create_app(study_dir, db_path), threaded=True)


# --------------------------------------------------------------------------------------------
# Responses file
# --------------------------------------------------------------------------------------------

RESPONSE_COLUMNS = ["rater", "stimulus", "method", "left_model", "right_model", "rating"]


def read_responses(path: str | Path) -> pd.DataFrame:
    """A responses CSV (as :func:`export_responses` writes it), checked."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no such responses file")
    table = pd.read_csv(path, dtype={"rater": str, "stimulus": str})
    missing = set(RESPONSE_COLUMNS) - set(table.columns)
    if missing:
        raise StudyError(f"{path}: missing column(s) {sorted(missing)}")
    bad = ~table["rating"].isin(RATINGS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 2  # the header is line 1
        raise StudyError(f"{path}: rating {table.loc[bad, 'rating'].iloc[0]} outside -2..+2 (row {row})")
    return table


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser, commands = cli.command_parser("gradcam_core.study", __doc__)
    serve = commands.add_parser("serve", help="serve the survey over a study folder")
    serve.add_argument("study_dir")
    serve.add_argument(
        "--db", default="responses.sqlite", help="SQLite file for the ratings (created if needed)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    export = commands.add_parser("export", help="write the stored ratings to a CSV")
    export.add_argument("--db", default="responses.sqlite")
    export.add_argument("--out", default="responses.csv")
    args = parser.parse_args(argv)
    return cli.run(lambda: _command(args), (StudyError,))


def _command(args) -> int:
    if args.command == "serve":
        server = make_server(args.study_dir, args.db, args.host, args.port)
        address = f"http://{args.host}:{server.server_port}/"
        print(f"serving {args.study_dir} on {address} , ratings -> {args.db}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        return 0
    count = export_responses(args.db, args.out)
    print(f"{count} ratings -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
