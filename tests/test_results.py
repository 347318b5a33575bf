"""Results files (:mod:`gradcam_core.results`): atomic writing, the per-image table of a task,
run times, the reference numbers and the provenance of a run."""

from __future__ import annotations

import platform

import pandas as pd
import pytest
import yaml

from gradcam_core import data, results
from gradcam_core.tasks.common import TaskRun


def test_reference_tables():
    assert results.load_reference("paper")["localization_ilsvrc15_val"]["rows"][0]["loc_top1"] == 56.51
    assert results.load_reference("seed")["task4_user_study_trust"][0]["method"] == "guided-grad-cam"
    with pytest.raises(ValueError, match="reference must be one of paper, seed.*got 'blog'"):
        results.load_reference("blog")


def test_write_table_is_atomic_with_six_significant_digits(tmp_path):
    path = results.write_table(pd.DataFrame({"a": [1.0 / 3]}), tmp_path / "x" / "t.csv")
    assert path == tmp_path / "x" / "t.csv"
    assert path.read_text() == "a\n0.333333\n" and [p.name for p in path.parent.iterdir()] == ["t.csv"]


def test_write_text_writes_the_text(tmp_path):
    path = results.write_text("hello\n", tmp_path / "deep" / "note.txt")
    assert path.read_text() == "hello\n" and [p.name for p in path.parent.iterdir()] == ["note.txt"]


def test_per_image_table_joins_runs_and_says_what_it_holds(tmp_path, capsys):
    runs = {
        "a": TaskRun(pd.DataFrame({"model": "a", "image": ["x", "x", "y"], "v": [1.5, 2.0, 3.0]})),
        "b": TaskRun(
            pd.DataFrame({"model": "b", "image": ["x"], "v": [4.5]}), ["/d/bad.JPEG", "/d/worse.JPEG"]
        ),
    }
    table = results.per_image_table(runs, tmp_path / "per_image.csv")
    assert table["model"].tolist() == ["a", "a", "a", "b"] and table["v"].tolist() == [1.5, 2.0, 3.0, 4.5]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "per_image.csv"), table)
    out = capsys.readouterr().out
    assert "a: 2 images evaluated, 0 unreadable images skipped\n" in out
    assert "b: 1 images evaluated, 2 unreadable images skipped: /d/bad.JPEG, /d/worse.JPEG\n" in out
    read = results.per_image_table({}, tmp_path / "copy.csv", per_image_csv=tmp_path / "per_image.csv")
    pd.testing.assert_frame_equal(read, table)
    assert (tmp_path / "copy.csv").read_bytes() == (tmp_path / "per_image.csv").read_bytes()
    assert f"2 images read from {tmp_path / 'per_image.csv'}" in capsys.readouterr().out


def test_run_times_written_per_task_and_read_back(tmp_path, capsys):
    results.write_run_times(tmp_path / "01_localization", {"squeezenet1_1": 12.345, "mobilenet_v1_0.75": 3.0})
    assert capsys.readouterr().out == "squeezenet1_1: 12.3 s\nmobilenet_v1_0.75: 3.0 s\n"
    assert (tmp_path / "01_localization" / results.RUN_TIMES_FILE).read_text() == (
        "model,seconds\nsqueezenet1_1,12.3\nmobilenet_v1_0.75,3\n"
    )
    results.write_run_times(tmp_path / "02_pointing_game", {"squeezenet1_1": 1.0})
    times = results.run_times(tmp_path)
    assert list(times.columns) == ["task", "model", "seconds"]
    assert times.values.tolist() == [
        ["01_localization", "squeezenet1_1", 12.3],
        ["01_localization", "mobilenet_v1_0.75", 3.0],
        ["02_pointing_game", "squeezenet1_1", 1.0],
    ]
    empty = results.run_times(tmp_path / "nothing")
    assert empty.empty and list(empty.columns) == ["task", "model", "seconds"]


def test_data_provenance_one_row_per_group():
    import hashlib

    table = results.data_provenance()
    assert table["group"].tolist() == list(data.GROUPS)
    manifest = data.read_manifest()
    mnist = manifest[manifest["path"].str.startswith("mnist/")].sort_values("path")
    row = table.set_index("group").loc["mnist"]
    assert row["files"] == 2 and row["bytes"] == mnist["bytes"].sum()
    assert row["sha256 of sha256s"] == hashlib.sha256("\n".join(mnist["sha256"]).encode()).hexdigest()
    assert table["files"].sum() == len(manifest)


def test_provenance_names_versions_and_hardware():
    import torch

    info = results.provenance()
    assert info["python"] == platform.python_version() and info["torch"] == torch.__version__
    assert {"platform", "cpu", "cpu_count", "gpu", "numpy", "captum", "cv2"} <= set(info)
    assert info["cpu"] and info["gpu"] == (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    )


def test_data_terms_cover_every_embedded_group():
    terms = results.data_terms()
    assert {group.split("/")[0] for group in data.GROUPS} == set(terms["group"])
    assert terms["terms"].str.len().gt(10).all() and terms["mirrored from"].str.contains("/").all()


def test_file_hashes_are_the_manifests(tmp_path):
    path = results.write_file_hashes(tmp_path / "hashes.csv")
    written, manifest = pd.read_csv(path), data.read_manifest()
    assert list(written.columns) == ["path", "sha256", "bytes"] and len(written) == len(manifest)
    assert written["sha256"].tolist() == manifest["sha256"].tolist()


# --------------------------------------------------------------------------------------------
# Published runs
# --------------------------------------------------------------------------------------------

SETTINGS = {"model_names": ["m"], "ig_steps": 4, "seed": 0}


def _published(tmp_path, table):
    """A published run in ``tmp_path`` of one per-image table ``scores`` (keys: image, method)."""
    results.write_table(table, tmp_path / "scores.csv")
    results.write_published_run(tmp_path, SETTINGS | {"images": len(table)}, {"scores m": 61.24})
    return results.read_published_run(tmp_path, ["scores"])


FULL = pd.DataFrame(
    {
        "image": ["a", "a", "b", "b", "c", "c"],
        "method": ["x", "y"] * 3,
        "score": [0.1, 0.2, 0.3, 0.4, 0.5, float("nan")],
        "hit": [True, False, True, True, False, False],
    }
)
KEYS = ["image", "method"]


def test_published_run_written_and_read_back(tmp_path):
    published = _published(tmp_path, FULL)
    assert published.parameters == SETTINGS | {"images": 6}
    assert published.description["seconds"] == {"scores m": 61.2}
    assert published.minutes == pytest.approx(61.2 / 60)
    assert set(published.description["machine"]) == {"cpu", "cpu_count", "gpu", "torch", "python"}
    assert published.description["commit"]  # a short hash, or "unknown" outside git
    pd.testing.assert_frame_equal(published.tables["scores"], FULL)


def test_published_run_missing_files_are_named(tmp_path):
    with pytest.raises(results.PublishedRunError, match=r"published_run.yaml: no published run here"):
        results.read_published_run(tmp_path, ["scores"])
    _published(tmp_path, FULL)
    with pytest.raises(results.PublishedRunError, match=r"lacks cascade.csv"):
        results.read_published_run(tmp_path, ["scores", "cascade"])


def test_a_recomputation_of_the_first_images_agrees(tmp_path):
    published = _published(tmp_path, FULL)
    # the first two images recomputed, with float noise below the tolerance and in another row order
    here = FULL.iloc[[3, 2, 1, 0]].assign(score=lambda t: t["score"] + 3e-6)
    agreement = results.check_published_run(published, {"scores": (here, KEYS)}, SETTINGS)
    assert agreement.to_dict("records") == [
        {
            "file": "scores.csv",
            "rows recomputed": 4,
            "found": 4,
            "largest difference": pytest.approx(3e-6, 0.1),
        }
    ]
    # missing values agree with missing values
    last = FULL.iloc[[5]]
    assert results.check_published_run(published, {"scores": (last, KEYS)}, SETTINGS)["found"].tolist() == [1]


def test_drift_in_a_number_stops_with_file_column_row_and_values(tmp_path):
    published = _published(tmp_path, FULL)
    here = FULL.iloc[:2].assign(score=[0.1, 0.203])
    where = r"scores.csv: score at \{'image': 'a', 'method': 'y'\} is 0.2 in the published run and 0.203 here"
    with pytest.raises(results.PublishedRunError, match=where):
        results.check_published_run(published, {"scores": (here, KEYS)}, SETTINGS)
    # a value that went missing is a difference too
    gone = FULL.iloc[:1].assign(score=[float("nan")])
    with pytest.raises(results.PublishedRunError, match=r"score at .*'a', 'method': 'x'"):
        results.check_published_run(published, {"scores": (gone, KEYS)}, SETTINGS)


def test_drift_in_a_decision_stops(tmp_path):
    published = _published(tmp_path, FULL)
    here = FULL.iloc[2:4].assign(hit=[True, False])
    where = r"hit at \{'image': 'b', 'method': 'y'\} is True .* False here"
    with pytest.raises(results.PublishedRunError, match=where):
        results.check_published_run(published, {"scores": (here, KEYS)}, SETTINGS)


def test_other_settings_columns_or_images_are_refused(tmp_path):
    published = _published(tmp_path, FULL)
    with pytest.raises(results.PublishedRunError, match=r"made with ig_steps=4, this run has ig_steps=32"):
        results.check_published_run(published, {"scores": (FULL, KEYS)}, SETTINGS | {"ig_steps": 32})
    with pytest.raises(results.PublishedRunError, match=r"columns .* differ"):
        results.check_published_run(published, {"scores": (FULL.drop(columns="hit"), KEYS)}, SETTINGS)
    others = FULL.assign(image=["d", "d", "e", "e", "f", "f"])
    with pytest.raises(results.PublishedRunError, match=r"holds 0 of the 6 rows recomputed here"):
        results.check_published_run(published, {"scores": (others, KEYS)}, SETTINGS)
    with pytest.raises(results.PublishedRunError, match=r"key columns \['image'\] do not identify"):
        results.check_published_run(published, {"scores": (FULL, ["image"])}, SETTINGS)


PARTS = {"scores": ["ig_steps", "images"], "extra": ["seed", "extra_images"]}


def test_a_run_remade_part_by_part_carries_the_other_parts_over(tmp_path):
    """Re-making one part reads the others from the published run (checked to have been made with
    this run's parameters for them) and keeps their run times and provenance."""
    earlier = tmp_path / "earlier"
    _published(earlier, FULL)
    parameters = SETTINGS | {"images": 6, "extra_images": 200}
    assert results.carried_parts(earlier, None, PARTS, parameters) == {}
    carried = results.carried_parts(earlier, ["extra"], PARTS, parameters)
    assert carried == {"scores": earlier / "scores.csv"}
    later = tmp_path / "later"
    results.write_table(FULL, later / "scores.csv")
    results.write_table(FULL.iloc[:2], later / "extra.csv")
    results.write_published_run(
        later, parameters, {"extra m": 9.04}, parts=list(PARTS), carried_from=earlier, carried=list(carried)
    )
    remade = results.read_published_run(later, list(PARTS))
    assert remade.parameters == parameters
    assert remade.description["seconds"] == {"extra m": 9.0, "scores m": 61.2}
    assert remade.minutes == pytest.approx(70.2 / 60)
    first = yaml.safe_load((earlier / results.PUBLISHED_RUN_FILE).read_text())
    assert remade.description["parts"]["scores"] == {key: first[key] for key in ("commit", "date", "machine")}
    assert results.part_provenance(remade.description, "extra")["commit"] == remade.description["commit"]
    assert results.part_provenance(first, "scores")["date"] == first["date"]


def test_a_part_is_not_carried_over_from_other_parameters_or_a_missing_file(tmp_path):
    _published(tmp_path, FULL)
    parameters = SETTINGS | {"images": 6, "extra_images": 200}
    with pytest.raises(
        results.PublishedRunError, match=r"part 'scores' was made with ig_steps=4, this run has"
    ):
        results.carried_parts(tmp_path, ["extra"], PARTS, parameters | {"ig_steps": 8})
    with pytest.raises(
        results.PublishedRunError, match=r"extra.csv: the published run lacks the part 'extra'"
    ):
        results.carried_parts(tmp_path, ["scores"], PARTS, parameters)
    with pytest.raises(results.PublishedRunError, match=r"must name some of the parts scores, extra"):
        results.carried_parts(tmp_path, ["nope"], PARTS, parameters)
    with pytest.raises(results.PublishedRunError, match=r"remake_parts needs published_run"):
        results.carried_parts(None, ["extra"], PARTS, parameters)


def test_pruning_a_published_run_leaves_its_description_and_parts(tmp_path):
    for name in ("scores.csv", "extra.csv", "scores_summary.csv", "run_times.csv"):
        results.write_table(FULL, tmp_path / name)
    results.write_published_run(tmp_path, SETTINGS, {"scores m": 1.0}, parts=["scores", "extra"])
    assert results.prune_published_run(tmp_path) == ["run_times.csv", "scores_summary.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extra.csv", "published_run.yaml", "scores.csv"]
    unnamed = tmp_path / "unnamed"
    _published(unnamed, FULL)  # written without parts: which files are its own cannot be told
    with pytest.raises(results.PublishedRunError, match="names no parts"):
        results.prune_published_run(unnamed)
