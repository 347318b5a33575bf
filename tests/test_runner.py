"""Resumable and sharded runs: 3 shards merged == 1 run, kill-and-resume == uninterrupted,
refusals that name the folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from gradcam_core import runner
from gradcam_core.results import write_table
from gradcam_core.tasks import occlusion

ROOT = Path(__file__).resolve().parent.parent


def roundtrip(table: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """A table as the runner stores it (CSV, 6 significant digits)."""
    return pd.read_csv(write_table(table, tmp_path / "direct.csv"))


@pytest.mark.parametrize(
    "task, options",
    [
        ("localization", {"methods": ["grad-cam", "full-image"], "thresholds": [0.15, 0.3], "batch_size": 4}),
        # the sweep on the run's first 4 records, whichever shards and chunks they fall in
        ("localization", {"methods": ["grad-cam"], "thresholds": [0.15, 0.3], "sweep_images": 4}),
        ("pointing", {"batch_size": 4}),
        ("occlusion", {"patch_size": 112, "stride": 56, "batch_size": 2}),
    ],
)
def test_three_shards_merged_equal_one_run(squeezenet, ilsvrc_records, tmp_path, task, options):
    records = ilsvrc_records[:10]
    direct = roundtrip(runner.TASKS[task](squeezenet, records, progress=False, **options).table, tmp_path)
    for index in range(3):
        runner.run_shard(
            task,
            squeezenet,
            records,
            tmp_path / "three",
            shard_index=index,
            num_shards=3,
            chunk_size=2,
            progress=False,
            **options,
        )
    runner.run_shard(task, squeezenet, records, tmp_path / "one", chunk_size=4, progress=False, **options)
    merged3, skipped3 = runner.merge(tmp_path / "three")
    merged1, _ = runner.merge(tmp_path / "one")
    assert len(skipped3) == 0 and list(merged3["image"].unique()) == [r.name for r in records]
    # batches of other compositions round differently in the last float32 digits (occlusion's
    # Spearman correlations move by up to ~2e-6): equal to 1e-5
    pd.testing.assert_frame_equal(merged3, merged1, check_exact=False, rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(merged3, direct, check_exact=False, rtol=1e-5, atol=1e-5)


def test_a_sweep_without_the_headline_threshold_is_refused(squeezenet, ilsvrc_records, tmp_path):
    with pytest.raises(runner.ShardError, match=r"headline threshold 0.15 among the thresholds \[0.1, 0.3\]"):
        runner.run_shard(
            "localization", squeezenet, ilsvrc_records[:2], tmp_path, thresholds=[0.1, 0.3], sweep_images=1
        )


def test_unfinished_or_missing_shards_are_refused(squeezenet, ilsvrc_records, tmp_path):
    records = ilsvrc_records[:6]
    runner.run_shard(
        "pointing", squeezenet, records, tmp_path, shard_index=0, num_shards=2, chunk_size=2, progress=False
    )
    with pytest.raises(runner.ShardError, match=r"shard\(s\) \[1\] of 2 missing"):
        runner.merge(tmp_path)
    runner.run_shard(
        "pointing", squeezenet, records, tmp_path, shard_index=1, num_shards=2, chunk_size=2, progress=False
    )
    (runner.shard_folder(tmp_path, 1, 2) / "chunk-000001.csv").unlink()  # as if killed before this chunk
    with pytest.raises(runner.ShardError, match="1 of 2 chunks done"):
        runner.merge(tmp_path)
    with pytest.raises(runner.ShardError, match="different run.*chunk_size"):
        runner.run_shard(
            "pointing",
            squeezenet,
            records,
            tmp_path,
            shard_index=1,
            num_shards=2,
            chunk_size=3,
            progress=False,
        )
    resumed = runner.run_shard(
        "pointing", squeezenet, records, tmp_path, shard_index=1, num_shards=2, chunk_size=2, progress=False
    )
    assert (resumed.chunks_done_before, resumed.chunks_run) == (1, 1)
    assert len(runner.merge(tmp_path)[0]) > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shard_index": 3, "num_shards": 3}, "shard_index must be an integer in 0..2"),
        ({"shard_index": 0, "num_shards": 0}, "num_shards must be an integer >= 1"),
        ({"shard_index": "0", "num_shards": 2}, "shard_index must be an integer"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
    ],
)
def test_bad_shard_parameters_are_named(squeezenet, ilsvrc_records, tmp_path, kwargs, message):
    with pytest.raises(runner.ShardError, match=message):
        runner.run_shard("pointing", squeezenet, ilsvrc_records[:2], tmp_path, progress=False, **kwargs)


def test_sharded_backprop_subset_and_unknown_task_are_refused(squeezenet, ilsvrc_records, tmp_path):
    with pytest.raises(runner.ShardError, match="image_space_images"):
        runner.run_shard(
            "localization", squeezenet, ilsvrc_records[:2], tmp_path, image_space_images=5, progress=False
        )
    with pytest.raises(runner.ShardError, match="unknown task 'lime'"):
        runner.run_shard("lime", squeezenet, ilsvrc_records[:2], tmp_path, progress=False)
    with pytest.raises(runner.ShardError, match="no shard folders"):
        runner.merge(tmp_path / "empty")


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "gradcam_core.runner", *args]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    common = [
        "run",
        "pointing",
        "--model",
        "squeezenet1_1",
        "--n-images",
        "48",
        "--chunk-size",
        "4",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run(
        _cli(*common, "--out", str(tmp_path / "whole")), cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(
        _cli(*common, "--out", str(killed_dir)),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = runner.shard_folder(killed_dir, 0, 1)
    deadline = time.time() + 300
    while time.time() < deadline and not (folder / "chunk-000001.csv").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_at_kill = len(list(folder.glob("chunk-*[0-9].csv")))
    assert 2 <= done_at_kill < 12  # killed mid-way
    again = subprocess.run(
        _cli(*common, "--out", str(killed_dir)), cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert (
        again.returncode == 0
        and f"{12 - done_at_kill} chunks run, {done_at_kill} already done" in again.stdout
    )
    for chunk in sorted((runner.shard_folder(tmp_path / "whole", 0, 1)).glob("chunk-*.csv")):
        assert (folder / chunk.name).read_bytes() == chunk.read_bytes(), chunk.name
    merged = subprocess.run(
        _cli("merge", str(killed_dir), "--out", str(tmp_path / "per_image.csv")),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert merged.returncode == 0 and pd.read_csv(tmp_path / "per_image.csv")["image"].nunique() == 48


def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), cwd=ROOT, capture_output=True, text=True)


def test_cli_names_bad_arguments(tmp_path):
    pointing = ["run", "pointing", "--model", "squeezenet1_1", "--out", str(tmp_path)]
    result = _run_cli(
        *pointing, "--n-images", "2", "--shard-index", "5", "--num-shards", "2", "--device", "cpu"
    )
    assert result.returncode == 2 and "shard_index must be an integer in 0..1, got 5" in result.stderr
    result = _run_cli(*pointing, "--data-source", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere" in result.stderr


def _status(argv) -> int:
    """``runner.main(argv)``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return runner.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (["--n-images", "0"], "argument --n-images: must be an integer >= 1, got 0"),
        (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
        (["--chunk-size", "x"], "argument --chunk-size: must be an integer >= 1, got 'x'"),
        (["--num-workers", "-1"], "argument --num-workers: must be an integer >= 0, got -1"),
        (["--thresholds", "0.1,a"], "argument --thresholds: must be comma-separated numbers, got '0.1,a'"),
        (["--thresholds", "0.1,1.5"], "argument --thresholds: must lie in [0, 1], got 1.5"),
        (["--device", "cuda:7"], "device 'cuda:7': this machine has"),
        (["--device", "gpu"], "device 'gpu' is not a torch device name"),
        (
            ["--out", "/etc/hostname/out"],
            "argument --out: cannot write '/etc/hostname/out': /etc/hostname is not a folder",
        ),
    ],
)
def test_cli_bad_values_exit_2_with_one_line_naming_them(extra, message, tmp_path, capsys):
    args = [
        "run",
        "localization",
        "--model",
        "squeezenet1_1",
        "--out",
        str(tmp_path / "out"),
        "--n-images",
        "1",
    ]
    options = dict(zip(args[2::2], args[3::2]))  # later options of the same name replace earlier ones
    options.update(dict(zip(extra[::2], extra[1::2])))
    assert _status(["run", "localization", *[item for pair in options.items() for item in pair]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_unwritable_outputs_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert _status(["merge", str(tmp_path), "--out", str(blocker / "merged.csv")]) == 2
    assert "file.txt is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["localization", "occlusion"])
def test_cli_runs_each_task_in_process_and_forwards_its_options(task, tmp_path, capsys):
    """The options the command line builds reach the task (loading options through **loading):
    the merged table equals a direct run with the same options."""
    from gradcam_core import data
    from gradcam_core.models import load_model

    out = tmp_path / task
    args = [
        "run",
        task,
        "--model",
        "squeezenet1_1",
        "--n-images",
        "2",
        "--batch-size",
        "1",
        "--device",
        "cpu",
    ]
    assert runner.main([*args, "--out", str(out), "--thresholds", "0.15,0.3"]) == 0
    assert "1 chunks run, 0 already done, 1 in all; 0 unreadable images skipped" in capsys.readouterr().out
    merged, skipped = runner.merge(out)
    plan = (runner.shard_folder(out, 0, 1) / "plan.json").read_text()
    assert '"batch_size": 1' in plan and len(skipped) == 0
    model = load_model("squeezenet1_1", device="cpu")
    records = data.load_ilsvrc_val(n_images=2)
    if task == "localization":
        assert set(merged["method"]) == {"grad-cam", "cam", "full-image", "centre-box"}
        assert sorted(merged["threshold"].dropna().unique()) == [0.15, 0.3]
        options = {"methods": ["grad-cam", "full-image", "centre-box", "cam"], "thresholds": [0.15, 0.3]}
        on_device = tmp_path / "on_device"
        assert (
            runner.main([*args, "--out", str(on_device), "--thresholds", "0.15,0.3", "--boxes-on-device"])
            == 0
        )
        assert '"boxes_on_device": true' in (runner.shard_folder(on_device, 0, 1) / "plan.json").read_text()
        pd.testing.assert_frame_equal(runner.merge(on_device)[0], merged)
        swept = tmp_path / "swept"
        assert (
            runner.main([*args, "--out", str(swept), "--thresholds", "0.15,0.3", "--sweep-images", "1"]) == 0
        )
        at_30 = runner.merge(swept)[0].query("threshold == 0.3")
        assert list(at_30["image"].unique()) == [records[0].name]  # the rest boxed at 15 % only
    else:
        assert set(merged["method"]) == set(occlusion.COMPARED_METHODS)
        options = {}
    direct = runner.TASKS[task](model, records, batch_size=1, progress=False, **options).table
    pd.testing.assert_frame_equal(merged, roundtrip(direct, tmp_path), check_exact=False, rtol=1e-5)
