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


def test_task1_scale_benchmark_short_mode_runs():
    out = run(
        "benchmarks/bench_task1.py",
        "--short",
        "--num-workers",
        "1",
        "--box-workers",
        "1",
        "--boxes-on-device",
    )
    rows = (
        "decode: loader, 1 workers",
        "decode: decode_jpeg on cpu",
        "Task 1's maps, no boxes",
        "Task 1, 1 box worker processes",
    )
    for row in (*rows, "Task 1, boxes on the cpu (kornia)"):
        assert f"| {row}" in out, row
    assert "8 full-size JPEGs" in out


def test_device_boxes_check_counts_no_difference_on_the_cpu():
    out = run("benchmarks/check_device_boxes.py", "--images", "3", "--thresholds", "0.15,0.5", "--full-size")
    assert "3 images at original sizes, thresholds [0.15, 0.5]: 60 boxes compared, 0 differ" in out
    assert "Task 1's rows: 12 compared, 0 differ" in out


def test_notebook_comparison_lists_numbers_beyond_the_tolerance_and_changed_words(tmp_path):
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compare_notebooks import agree, compare_notebook, last_digit, sanitisers

    assert last_digit("0.35") == 0.01 and last_digit("48") == 1 and last_digit("1,300") == 1
    assert last_digit("1.2e-04") == 1e-05
    assert agree("0.35", "0.37", rtol=0.0) and not agree("0.35", "0.38", rtol=0.0)  # 2 units of 0.01
    assert agree("100", "101.9", rtol=0.02) and not agree("100", "102.1", rtol=0.02)
    cell = {
        "cell_type": "code",
        "metadata": {"tags": []},
        "outputs": [
            {"output_type": "stream", "text": ["Grad-CAM error 48.1 % (n = 1,300)\n", " 50%|#####| 1/2\n"]},
            {"output_type": "display_data", "data": {"text/html": ["<td>reproduced</td><td>0.35</td>"]}},
        ],
    }
    ignored = cell | {
        "metadata": {"tags": ["nbval-ignore-output"]},
        "outputs": [{"output_type": "stream", "text": "9 s"}],
    }
    committed = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "x"}, cell, ignored]}
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "n.ipynb").write_text(json.dumps(committed))
    rules = sanitisers()
    assert compare_notebook(folder / "n.ipynb", folder / "n.ipynb", 0.02, rules) == (3, [])

    def variant(text, html):
        changed = json.loads(json.dumps(committed))
        changed["cells"][1]["outputs"][0]["text"][0] = text
        changed["cells"][1]["outputs"][1]["data"]["text/html"] = [html]
        changed["cells"][2]["outputs"][0]["text"] = "12 s"  # ignored, like nbval
        path = tmp_path / f"v{len(list(tmp_path.iterdir()))}.ipynb"
        path.write_text(json.dumps(changed))
        return compare_notebook(folder / "n.ipynb", path, 0.02, rules)

    injected = {
        "cell_type": "code",
        "metadata": {"tags": ["injected-parameters"]},
        "outputs": [],
        "source": "device = 'cuda'",
    }
    papermilled = json.loads(json.dumps(committed))
    papermilled["cells"].insert(1, injected)
    (tmp_path / "p.ipynb").write_text(json.dumps(papermilled))
    assert compare_notebook(folder / "n.ipynb", tmp_path / "p.ipynb", 0.02, rules) == (3, [])
    compared, differences = variant("Grad-CAM error 49.3 % (n = 1,300)\n", "<td>reproduced</td><td>0.36</td>")
    assert compared == 3 and [(d.cell, d.kind, d.committed, d.other) for d in differences] == [
        (1, "number", "48.1", "49.3")
    ]
    assert differences[0].context == "Grad-CAM error"
    compared, differences = variant(
        "Grad-CAM error 48.1 % (n = 1,300)\n", "<td>not reproduced</td><td>0.35</td>"
    )
    assert [(d.kind, d.committed, d.other) for d in differences] == [
        ("text", ") PROGRESS reproduced", ") PROGRESS not reproduced")  # the progress bar sanitised
    ]


def test_notebook_comparison_lists_failed_executions_and_compares_the_others(tmp_path, capsys):
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compare_notebooks import main

    cell = {
        "cell_type": "code",
        "metadata": {},
        "outputs": [{"output_type": "stream", "text": "error 48.1 %"}],
    }
    notebook = {"metadata": {}, "cells": [{"cell_type": "markdown", "metadata": {}, "source": "x"}, cell]}
    banner = {"cell_type": "markdown", "metadata": {"tags": ["papermill-error-cell-tag"]}, "source": "failed"}
    stopped = json.loads(json.dumps(notebook))  # killed at its time limit: outputs gone, cell pending
    stopped["cells"][1] |= {"outputs": [], "metadata": {"papermill": {"status": "pending"}}}
    copies = {
        "01_a.ipynb": json.dumps({"metadata": {}, "cells": [banner, *notebook["cells"]]}),
        "02_b.ipynb": json.dumps(notebook),
        "03_c.ipynb": json.dumps(stopped),
        "04_d.ipynb": json.dumps(notebook)[:20],  # written in part
    }
    committed, executed = tmp_path / "committed", tmp_path / "executed"
    committed.mkdir()
    executed.mkdir()
    for name, text in copies.items():
        (committed / name).write_text(json.dumps(notebook))
        (executed / name).write_text(text)
    assert main([str(committed), str(executed)]) == 1
    out = capsys.readouterr()
    assert "| 01_a.ipynb | not compared: its cells do not correspond to the committed notebook's |" in out.out
    assert "| 02_b.ipynb | 1 | 0 | 0 |" in out.out
    assert "| 03_c.ipynb | not compared: its execution failed or stopped (see its log) |" in out.out
    assert "| 04_d.ipynb | not compared: not a readable notebook (JSONDecodeError) |" in out.out
    assert "not compared: 01_a.ipynb, 03_c.ipynb, 04_d.ipynb" in out.err


def test_gpu_parts_pack_wheels_and_data_first_fit_into_parts_that_unpack_to_their_places(tmp_path):
    import tarfile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_prepare import MEMBER_BYTES, parts

    wheels, cache = tmp_path / "whl", tmp_path / "cache"
    files = {"a/1.bin": 600, "a/2.bin": 600, "b/3.bin": 300, "c.bin": 900}
    for name, size in files.items():
        (cache / name).parent.mkdir(parents=True, exist_ok=True)
        (cache / name).write_bytes(bytes(size))
    wheels.mkdir()
    (wheels / "w-1.whl").write_bytes(bytes(350))
    budget = 1000 + 2 * MEMBER_BYTES
    written = parts(tmp_path / "parts", {".whl": wheels, "data/cache": cache}, part_bytes=budget)
    members = []
    for part in written:
        with tarfile.open(part) as tar:
            members.append({m.name: m.size for m in tar.getmembers()})
    # largest first, each into the first part with room: 900; 600 + 350; 600 + 300
    assert members == [
        {"data/cache/c.bin": 900, ".gpu/unpacked/part-1-of-3": 0},
        {"data/cache/a/1.bin": 600, ".whl/w-1.whl": 350, ".gpu/unpacked/part-2-of-3": 0},
        {"data/cache/a/2.bin": 600, "data/cache/b/3.bin": 300, ".gpu/unpacked/part-3-of-3": 0},
    ]
    assert all(part.stat().st_size <= budget for part in written)
