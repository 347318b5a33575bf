"""Survey robustness benchmark: the Task 4 survey served by its production server (``python -m
gradcam_core.study serve``, waitress) as raters would use it, measured in one run.

    python benchmarks/bench_survey.py                     # 50 raters x 20 ratings; 4 kills
    python benchmarks/bench_survey.py --raters 5 --stimuli 6 --kills 1  # short

1. **Load**: ``--raters`` raters at once, each with its own browser (cookies, CSRF tokens), rate
   every stimulus of a study folder; per POST the latency. Printed: ratings acknowledged (the
   server answered 200), stored, lost (acknowledged and not stored), duplicated, p50 and p99
   latency.
2. **Kill**: the same raters again on a fresh database while the server is killed with SIGKILL
   ``--kills`` times mid-burst (at evenly spaced shares of the ratings) and restarted on the
   same port; a rater whose request fails
   waits and sends it again, as a browser's reload would. Printed: the same counts, plus the
   requests that failed during the outages.

The study folder is synthetic (blank pictures, ``--stimuli`` of them): the survey's storage does
not depend on what the pictures show. Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import http.client
import http.cookiejar
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from gradcam_core import study
from gradcam_core.results import write_table, write_text

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')
STIMULUS = re.compile(r'name="stimulus" value="([^"]*)"')


def synthetic_study(folder: Path, stimuli: int) -> Path:
    """A study folder of ``stimuli`` pairs of blank pictures, as :func:`make_stimuli` lays it out."""
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), (128, 128, 128)).save(folder / "images" / "photo.png")
    rows = []
    for i in range(1, stimuli + 1):
        name = f"s{i:03d}"
        for side in ("left", "right"):
            Image.new("RGB", (8, 8), (120 + i % 7, 128, 128)).save(folder / "images" / f"{name}_{side}.png")
        rows.append(
            {
                "stimulus": name,
                "image": f"img{i}",
                "class_name": "thing",
                "method": "guided-backprop" if i % 2 else "guided-grad-cam",
                "left_model": "a" if i % 3 else "b",
                "right_model": "b" if i % 3 else "a",
                "accurate_side": "right" if i % 3 else "left",
                "original_file": "photo.png",
                "left_file": f"{name}_left.png",
                "right_file": f"{name}_right.png",
            }
        )
    write_table(pd.DataFrame(rows, columns=study.MANIFEST_COLUMNS), folder / study.MANIFEST)
    write_text(
        '{"question": "Which robot?", "accurate_model": "a", "other_model": "b"}', folder / study.STUDY_FILE
    )
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``study serve`` as a subprocess on a fixed port: started, killed, started again."""

    def __init__(self, study_dir: Path, db: Path, port: int):
        self.argv = [sys.executable, "-m", "gradcam_core.study", "serve", str(study_dir), "--db", str(db)]
        self.argv += ["--port", str(port), "--threads", "8"]
        self.port, self.process = port, None

    def start(self):
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        line = self.process.stdout.readline()
        if "serving" not in line:
            raise RuntimeError(f"the survey did not start: {line}{self.process.stdout.read()}")

    def kill(self):
        self.process.kill()  # SIGKILL: no clean shutdown
        self.process.wait(30)
        self.process.stdout.close()

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        self.process.wait(30)
        self.process.stdout.close()


class Rater(threading.Thread):
    """One rater's browser rating every stimulus; a failed request is sent again after a pause."""

    def __init__(self, url: str, name: str, seed: int):
        super().__init__(daemon=True)
        self.url, self.name = url, name
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.rng = np.random.default_rng(seed)
        self.acknowledged: dict[str, int] = {}
        self.latencies: list[float] = []
        self.failures = 0
        self.page = ""

    def send(self, path: str, fields: dict | None = None) -> str:
        while True:
            body = None
            if fields is not None:
                token = TOKEN.search(self.page)
                body = urllib.parse.urlencode(
                    fields | {"csrf_token": token.group(1) if token else ""}
                ).encode()
            start = time.perf_counter()
            try:
                with self.opener.open(self.url + path, data=body, timeout=30) as response:
                    text = response.read().decode()
                    if fields is not None:
                        self.latencies.append(time.perf_counter() - start)
                    return text
            except urllib.error.HTTPError as err:
                if err.code != 409:
                    raise
                return err.read().decode()  # an answer already stored: the page says so
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException):
                self.failures += 1
                time.sleep(0.2)

    def run(self):
        self.page = self.send("/")
        self.page = self.send("/start", {"rater": self.name})
        while (found := STIMULUS.search(self.page)) is not None:
            stimulus, rating = found.group(1), int(self.rng.integers(-2, 3))
            self.page = self.send(f"/rate/{self.name}", {"stimulus": stimulus, "rating": str(rating)})
            self.acknowledged[stimulus] = rating


def burst(url: str, raters: int, during=None) -> list[Rater]:
    """``raters`` raters at once; ``during()`` runs in this thread while they rate."""
    crowd = [Rater(url, f"rater-{i:03d}", i) for i in range(raters)]
    for rater in crowd:
        rater.start()
    if during is not None:
        during(crowd)
    for rater in crowd:
        rater.join(600)
    return crowd


def figures(crowd: list[Rater], db: Path) -> dict:
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT rater, stimulus, rating FROM responses").fetchall()
    kept = {(r, s): v for r, s, v in stored}
    acknowledged = {(c.name, s): v for c in crowd for s, v in c.acknowledged.items()}
    latencies = np.concatenate([c.latencies for c in crowd]) * 1000
    return {
        "raters": len(crowd),
        "acknowledged": len(acknowledged),
        "stored": len(stored),
        "lost": sum(key not in kept for key in acknowledged),
        "changed": sum(key in kept and kept[key] != value for key, value in acknowledged.items()),
        "duplicated": len(stored) - len(kept),
        "failed requests (resent)": sum(c.failures for c in crowd),
        "p50 ms": round(float(np.percentile(latencies, 50))),
        "p99 ms": round(float(np.percentile(latencies, 99))),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--stimuli", type=int, default=20)
    parser.add_argument("--kills", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = synthetic_study(Path(scratch) / "study", args.stimuli)
        rows = {}
        for phase, kills in (("load", 0), ("kill", args.kills)):
            db = Path(scratch) / f"{phase}.sqlite"
            server = Server(folder, db, free_port())
            server.start()
            url = f"http://127.0.0.1:{server.port}"

            def outages(crowd, kills=kills, server=server):
                """Kill at evenly spaced points of the burst: when the acknowledged ratings pass
                1/(kills+1), 2/(kills+1), ... of all of them."""
                total = args.raters * args.stimuli
                for k in range(1, kills + 1):
                    while sum(len(c.acknowledged) for c in crowd) < k * total / (kills + 1):
                        time.sleep(0.01)
                    server.kill()
                    server.start()

            started = time.perf_counter()
            crowd = burst(url, args.raters, outages if kills else None)
            rows[f"{phase} ({kills} kills)"] = figures(crowd, db) | {
                "seconds": round(time.perf_counter() - started, 1)
            }
            server.stop()
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(f"Survey on waitress, {args.raters} raters x {args.stimuli} stimuli, 2 phases:")
    print(table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
