"""The benchmarks run in their short mode: they must keep working and keep checking that the
compared maps agree. Times are printed, never asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)
    return result.stdout


def test_explainer_benchmark_short_mode_runs_and_peers_agree():
    out = run("benchmarks/bench_explainers.py", "--short")
    diffs = dict(
        re.findall(
            r"\| (grad-cam|guided-backprop|occlusion[^|]*|integrated-gradients[^|]*) \| "
            r"(?:captum|pytorch-grad-cam) \|.*\| ([0-9.e+-]+) \|\n",
            out,
        )
    )
    assert set(diffs) >= {"grad-cam", "guided-backprop"} and all(float(d) <= 1e-4 for d in diffs.values()), (
        diffs
    )
    assert "Task 1 end to end" in out


def test_gradcam_benchmark_short_mode_runs():
    out = run("benchmarks/bench_gradcam.py", "--models", "squeezenet1_1", "--batch", "2", "--repeats", "1")
    assert "ours Grad-CAM top-5" in out and "max |ours - pytorch-grad-cam|" in out


def test_survey_benchmark_short_mode_loses_nothing():
    out = run("benchmarks/bench_survey.py", "--raters", "4", "--stimuli", "6", "--kills", "1")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("load", "kill"))}
    # columns after the phase's two words: raters, acknowledged, stored, lost, changed, duplicated, ...
    for phase in ("load", "kill"):
        raters, acknowledged, stored, lost, changed, duplicated = map(int, rows[phase][3:9])
        assert (raters, acknowledged, stored, lost, changed, duplicated) == (4, 24, 24, 0, 0, 0), rows[phase]
