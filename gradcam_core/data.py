"""Data layer: the embedded default files and typed loaders for every dataset of the report.

Fetching
--------
``data/manifest.csv.gz`` lists every embedded file (relative path, sha256, size, public URL; built
from the mirror's ``MANIFEST.csv`` by ``python -m gradcam_core.data build-manifest``). :func:`fetch`
copies files into a git-ignored cache (``data/cache`` or ``$GRADCAM_DATA_DIR``) from a mirror folder
when one is given (``$GRADCAM_DATA_MIRROR``, or ``../shared/data`` beside the repository when it
exists), else downloads them from their URL (two NIH tables are instead cut from the copies that
ship inside the ``torchxrayvision`` package). Every file is verified against its sha256 and written
under a temporary name first, so a final name never holds a partial or unverified file. A file
already in the cache with the manifest's size is not fetched again.

Loaders
-------
Plain records: :class:`ImageRecord` (ILSVRC2012 val), :class:`XrayRecord` (NIH ChestX-ray14),
arrays for MNIST and CIFAR-10. Every image goes through :func:`load_rgb`, which turns any
unreadable file into an :class:`ImageLoadError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import cli
from .files import atomic_path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = REPO_ROOT / "data" / "manifest.csv.gz"
DEFAULT_CACHE = REPO_ROOT / "data" / "cache"
DEFAULT_MIRROR = REPO_ROOT.parent / "shared" / "data"

#: The groups of embedded files; each is a top-level folder (or two levels for weights).
GROUPS = (
    "ilsvrc2012_val_1300",
    "ilsvrc2012_val_boxes",
    "weights/squeezenet1_1",
    "weights/mobilenet_v1_0.75_224",
    "nih_cxr",
    "mnist",
    "cifar10",
)


class ChecksumError(RuntimeError):
    """A fetched file's sha256 differs from the manifest."""


class ImageLoadError(OSError):
    """An image file could not be read as an image; the message names the file."""


class DataFileError(ValueError):
    """A metadata or data file is missing or malformed; the message names the file."""


class WeightsUnavailableError(RuntimeError):
    """Model weights (a download, a local file or a stand-in's checkpoint) are missing or cannot
    be read; the message says which file to put where."""


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where fetched files live: ``$GRADCAM_DATA_DIR`` or ``data/cache`` in the repository."""
    return Path(os.environ.get("GRADCAM_DATA_DIR") or DEFAULT_CACHE)


def mirror_dir() -> Path | None:
    """The local mirror of the public files, if any: ``$GRADCAM_DATA_MIRROR``, else
    ``../shared/data`` beside the repository when it exists, else ``None`` (download)."""
    env = os.environ.get("GRADCAM_DATA_MIRROR")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise DataFileError(f"GRADCAM_DATA_MIRROR={env!r} is not a directory")
        return path
    return DEFAULT_MIRROR if DEFAULT_MIRROR.is_dir() else None


def read_manifest(path: Path = MANIFEST_PATH) -> pd.DataFrame:
    """The committed list of embedded files: columns ``path, sha256, bytes, url``."""
    try:
        manifest = pd.read_csv(path, dtype={"path": str, "sha256": str, "bytes": "int64", "url": str})
    except FileNotFoundError:
        raise DataFileError(f"manifest {path} is missing") from None
    missing = {"path", "sha256", "bytes", "url"} - set(manifest.columns)
    if missing:
        raise DataFileError(f"manifest {path} lacks columns {sorted(missing)}")
    return manifest


def build_manifest(source_csv: Path, out: Path = MANIFEST_PATH) -> int:
    """Write the committed manifest from the mirror's ``MANIFEST.csv``; returns the row count."""
    table = pd.read_csv(source_csv).rename(columns={"source": "url"})[["path", "sha256", "bytes", "url"]]
    with gzip.GzipFile(out, "wb", mtime=0) as handle:  # mtime=0: byte-identical rebuilds
        handle.write(table.to_csv(index=False).encode())
    return len(table)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def _rows_from_package(source: str, relpath: str, dest: Path) -> None:
    """Rebuild a metadata file from a table shipped inside a Python package.

    ``source`` reads ``"package==version: path/in/package.csv.gz"``: the header and the rows
    whose first field names an image of the same group (``<group>/images/*`` in the manifest)
    are kept, byte for byte, as the mirror's copy was made.
    """
    package_spec, inner = (part.strip() for part in source.split(":", 1))
    package = package_spec.split("==")[0]
    import importlib

    try:
        root = Path(importlib.import_module(package).__file__).parent.parent
    except ImportError as err:
        raise OSError(f"cannot build {relpath}: package {package} is not installed") from err
    group = relpath.split("/", 1)[0]
    names = {p.rsplit("/", 1)[-1] for p in read_manifest()["path"] if p.startswith(f"{group}/images/")}
    with gzip.open(root / inner, "rt", newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if line.split(",", 1)[0] in names]
    dest.write_text("".join(kept), newline="")


def fetch_file(relpath: str, sha256: str, url: str, *, cache: Path, mirror: Path | None) -> Path:
    """Fetch one file into ``cache/relpath`` from the mirror (if it has it) or its URL.

    The bytes go to a temporary file beside the target, are verified, and only then renamed to
    the final name; on any failure the temporary file is removed and nothing is left behind.
    """
    final = cache / relpath
    with atomic_path(final) as tmp:
        source = mirror / relpath if mirror is not None else None
        if source is not None and source.is_file():
            shutil.copyfile(source, tmp)
            origin = str(source)
        elif not url.startswith(("https://", "http://")):
            _rows_from_package(url, relpath, tmp)
            origin = url
        else:
            try:
                _download(url, tmp)
            except OSError as err:
                raise OSError(f"cannot download {relpath} from {url}: {err}") from err
            origin = url
        actual = sha256_of(tmp)
        if actual != sha256:
            raise ChecksumError(
                f"sha256 mismatch for {relpath} (from {origin}): expected {sha256}, got {actual}"
            )
    return final


@dataclass
class FetchReport:
    root: Path
    fetched: list[str] = field(default_factory=list)
    present: int = 0


def fetch(
    groups: str | list[str] | None = None,
    *,
    cache: Path | None = None,
    mirror: Path | None | str = "auto",
    workers: int = 8,
    progress: bool = True,
) -> FetchReport:
    """Make the files of ``groups`` (default: all of :data:`GROUPS`) present in the cache.

    Returns a :class:`FetchReport` with the cache root, the files fetched now and the number
    already present (same size as the manifest). ``mirror="auto"`` uses :func:`mirror_dir`.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    mirror = mirror_dir() if mirror == "auto" else (Path(mirror) if mirror is not None else None)
    if isinstance(groups, str):
        groups = [groups]
    groups = list(GROUPS) if groups is None else groups
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown data group(s) {unknown}; known groups: {', '.join(GROUPS)}")
    manifest = read_manifest()
    wanted = manifest[manifest["path"].map(lambda p: any(p.startswith(g + "/") for g in groups))]
    report = FetchReport(root=cache)
    todo = []
    for row in wanted.itertuples(index=False):
        target = cache / row.path
        try:
            if target.stat().st_size == row.bytes:
                report.present += 1
                continue
        except FileNotFoundError:
            pass
        todo.append(row)
    if not todo:
        return report

    def one(row):
        fetch_file(row.path, row.sha256, row.url, cache=cache, mirror=mirror)
        return row.path

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(one, todo)
        for relpath in tqdm(
            results, total=len(todo), desc="fetch data", unit="file", disable=not progress, mininterval=2.0
        ):
            report.fetched.append(relpath)
    return report


def fetch_group(group: str) -> Path:
    """Path of an embedded group in the cache, fetched first (from the mirror, or downloaded)
    when any of its files is missing."""
    report = fetch(group, progress=False)
    return report.root / group


def read_weights_file(path: str | Path, what: str = "weights file", *, weights_only: bool = True):
    """``torch.load`` of a weights file or checkpoint on the CPU; a missing or unreadable file is
    a :class:`WeightsUnavailableError` naming it (``what`` says what the file is)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # any unpickling failure: a file that cannot be used
        raise WeightsUnavailableError(f"cannot read {what} {path}: {err}") from err


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@contextmanager
def _reading_image(path: Path):
    """Turn any failure to open or decode ``path`` into an :class:`ImageLoadError` naming it."""
    try:
        yield
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit RGB.

    Grayscale, palette, CMYK and 16-bit images are converted; an alpha channel is dropped.
    Anything that cannot be decoded (missing, empty, corrupt or truncated file, a decompression
    bomb) raises :class:`ImageLoadError` naming the file.
    """
    path = Path(path)
    with _reading_image(path), Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            high = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
            image = Image.fromarray(np.clip(array / high * 255.0 + 0.5, 0, 255).astype(np.uint8))
        elif image.mode == "F":
            raise ImageLoadError(f"{path}: floating-point images are not supported")
        return image.convert("RGB")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with _reading_image(Path(path)), Image.open(path) as image:
        return image.size


class ImageDataset:
    """A ``torch.utils.data`` map-style dataset over records with a ``path``: item ``i`` is
    ``(transform(load_rgb(path)), i)``, or ``(None, i)`` when the image cannot be read, so a
    long run can skip and count bad images (see :func:`collate_skipping`) instead of dying."""

    def __init__(self, records, transform):
        self.records = records
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        try:
            return self.transform(load_rgb(self.records[index].path)), index
        except ImageLoadError:
            return None, index


def collate_skipping(batch):
    """Collate ``(tensor | None, index)`` items into ``(images, indices, failed_indices)``."""
    import torch

    good = [(x, i) for x, i in batch if x is not None]
    failed = [i for x, i in batch if x is None]
    if not good:
        return None, [], failed
    return torch.stack([x for x, _ in good]), [i for _, i in good], failed


# --------------------------------------------------------------------------------------------
# ILSVRC2012 validation set
# --------------------------------------------------------------------------------------------


class _NamedByFile:
    """A record whose ``name`` is its file's name."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ImageRecord(_NamedByFile):
    """One ILSVRC2012 val image: ``boxes`` is ``(M, 4)`` float32 ``x0, y0, x1, y1`` in the pixel
    coordinates of the image as stored (``size`` = stored ``(width, height)``);
    ``original_size`` is the official val image's ``(width, height)`` (``image_sizes.txt``),
    the frame that pixel tolerances such as the pointing game's are stated in."""

    path: Path
    label: int
    class_name: str
    boxes: np.ndarray
    size: tuple[int, int]
    original_size: tuple[int, int] | None = None

    @property
    def pixel_scale(self) -> tuple[float, float]:
        """Original pixels per stored pixel, ``(x, y)`` (1, 1 without an original size)."""
        if self.original_size is None:
            return 1.0, 1.0
        return self.original_size[0] / self.size[0], self.original_size[1] / self.size[1]


def imagenet_class_names() -> list[str]:
    """The 1,000 ILSVRC class names in torchvision's (0-999) order, from torchvision's metadata."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _read_csv_lines(path: Path, names: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, header=None, names=names, skipinitialspace=True)
    except FileNotFoundError:
        raise DataFileError(f"{path}: metadata file is missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: malformed ({err})") from err
    if table.empty:
        raise DataFileError(f"{path}: malformed (empty file)")
    if table.isna().any().any():
        bad = table[table.isna().any(axis=1)].index[0]
        raise DataFileError(f"{path}: malformed line {bad + 1} (expected {len(names)} fields)")
    return table


def clip_boxes(boxes: np.ndarray, size: tuple[int, int], where) -> np.ndarray:
    """Boxes ``x0, y0, x1, y1`` clipped to an image of ``size = (W, H)`` (annotations reach a
    pixel past the border now and then); a box with no area inside the image is an error
    naming ``where``."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    w, h = size
    clipped = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if empty.any():
        raise DataFileError(f"{where}: box {boxes[empty][0].tolist()} lies outside the {w}x{h} image")
    return clipped


def read_ilsvrc_boxes(boxes_dir: Path | None = None) -> tuple[dict, dict, dict]:
    """Metadata of the 50,000 val images: ``labels[name]``, ``sizes[name] = (W, H)`` and
    ``boxes[name] = (M, 4)`` array in original pixels, keyed by file name."""
    boxes_dir = Path(boxes_dir) if boxes_dir is not None else fetch_group("ilsvrc2012_val_boxes")
    labels_t = _read_csv_lines(boxes_dir / "class_labels.txt", ["image", "label"])
    sizes_t = _read_csv_lines(boxes_dir / "image_sizes.txt", ["image", "w", "h"])
    loc_t = _read_csv_lines(boxes_dir / "localization.txt", ["image", "x0", "y0", "x1", "y1"])

    def strip(names: pd.Series) -> pd.Series:  # "val/NAME" -> "NAME"
        return names.str.rsplit("/", n=1).str[-1]

    labels = dict(zip(strip(labels_t["image"]), labels_t["label"].astype(int)))
    sizes = dict(zip(strip(sizes_t["image"]), zip(sizes_t["w"].astype(int), sizes_t["h"].astype(int))))
    loc_t = loc_t.assign(image=strip(loc_t["image"]))
    try:
        coords = loc_t[["x0", "y0", "x1", "y1"]].to_numpy(np.float64)
    except ValueError as err:
        raise DataFileError(
            f"{boxes_dir / 'localization.txt'}: box coordinates must be numbers ({err})"
        ) from err
    bad = ~np.isfinite(coords).all(axis=1) | (coords[:, 2] < coords[:, 0]) | (coords[:, 3] < coords[:, 1])
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        raise DataFileError(
            f"{boxes_dir / 'localization.txt'}: line {line + 1} ({loc_t['image'].iloc[line]}) is not "
            f"a box x0 <= x1, y0 <= y1 of finite numbers: {coords[line].tolist()}"
        )
    coords = coords.astype(np.float32)
    boxes: dict[str, list] = {}
    for name, row in zip(loc_t["image"], coords):
        boxes.setdefault(name, []).append(row)
    return labels, sizes, {k: np.stack(v) for k, v in boxes.items()}


def write_full_size_val(records, folder: str | Path, quality: int = 95) -> Path:
    """Official-layout val JPEGs made from ``records`` (embedded images) at their original sizes
    (``image_sizes.txt``): the input that the official val set's decoding costs (about 500 x 375
    pixels per image), for benchmarks and tests; the pixels are the embedded 227 x 227 copies
    rescaled, not the originals. Returns ``folder``, which :func:`load_ilsvrc_val` reads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, sizes, _ = read_ilsvrc_boxes()
    for record in records:
        load_rgb(record.path).resize(sizes[record.name]).save(folder / record.name, quality=quality)
    return folder


def load_ilsvrc_val(
    image_dir: str | Path | None = None, boxes_dir: str | Path | None = None, n_images: int | None = None
) -> list[ImageRecord]:
    """ILSVRC2012 val records with labels (0-999, torchvision order) and ground-truth boxes.

    ``image_dir=None`` (or ``"embedded"``, as the notebooks' and the runner's ``data_source``
    parameter says it) serves the embedded 1,300-image subset (227x227 full-frame resizes);
    otherwise ``image_dir`` is a folder of official ``ILSVRC2012_val_XXXXXXXX.JPEG`` files (all
    50,000 or any part). Boxes come from ``ilsvrc2012_val_boxes`` in original pixels and are
    scaled per axis to the stored image size read from each file's header, so they are right for
    full-size and for rescaled copies alike.
    """
    labels, sizes, boxes = read_ilsvrc_boxes(boxes_dir)
    if image_dir is None or image_dir == "embedded":
        root = fetch_group("ilsvrc2012_val_1300")
        listing = _read_csv_lines(root / "dataset.txt", ["image", "label"])
        paths = [root / p for p in listing["image"]]
        for path, label in zip(paths, listing["label"]):
            if labels.get(path.name) != int(label):
                raise DataFileError(
                    f"{root / 'dataset.txt'}: label {label} of {path.name} disagrees with "
                    f"class_labels.txt ({labels.get(path.name)})"
                )
    else:
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise DataFileError(f"ILSVRC image folder {image_dir} does not exist")
        paths = sorted(image_dir.glob("ILSVRC2012_val_*.JPEG"))
        if not paths:
            raise DataFileError(f"no ILSVRC2012_val_*.JPEG files in {image_dir}")
    if n_images is not None:
        if n_images < 1:
            raise ValueError(f"n_images must be >= 1, got {n_images}")
        paths = paths[:n_images]
    names = imagenet_class_names()
    records = []
    for path in paths:
        if path.name not in labels or path.name not in sizes:
            raise DataFileError(f"{path}: not an ILSVRC2012 val image listed in the boxes metadata")
        stored = image_size(path)
        orig_w, orig_h = sizes[path.name]
        scale = np.array([stored[0] / orig_w, stored[1] / orig_h] * 2, dtype=np.float32)
        label = labels[path.name]
        image_boxes = boxes.get(path.name, np.zeros((0, 4), np.float32)) * scale
        boxes_here = clip_boxes(image_boxes, stored, path)
        records.append(ImageRecord(path, label, names[label], boxes_here, stored, (orig_w, orig_h)))
    return records


# --------------------------------------------------------------------------------------------
# NIH ChestX-ray14
# --------------------------------------------------------------------------------------------

NIH_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)


#: BBox_List_2017 names one finding differently from Data_Entry_2017.
NIH_BOX_FINDING_NAMES = {"Infiltrate": "Infiltration"}


@dataclass(frozen=True)
class XrayRecord(_NamedByFile):
    """One chest X-ray: ``findings`` from Data_Entry_2017 (empty for "No Finding");
    ``boxes`` maps a finding (Data_Entry_2017's name) to ``(M, 4)`` float32 ``x0, y0, x1, y1``
    in stored pixels."""

    path: Path
    findings: tuple[str, ...]
    boxes: dict
    size: tuple[int, int]


def nih_package_tables() -> tuple[Path, Path]:
    """The complete NIH tables shipped inside torchxrayvision: Data_Entry_2017 (112,120 images)
    and BBox_List_2017 (984 boxes on 880 images), for the full profile."""
    import torchxrayvision

    folder = Path(torchxrayvision.__file__).parent / "data"
    return folder / "Data_Entry_2017_v2020.csv.gz", folder / "BBox_List_2017.csv.gz"


def _read_table(path: Path, columns: list[str], what: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataFileError(f"{path}: {what} does not exist")
    try:
        table = pd.read_csv(path)
    except Exception as err:  # pandas raises many kinds of parser errors
        raise DataFileError(f"{path}: cannot read {what}: {err}") from err
    if table.shape[1] < len(columns):
        raise DataFileError(
            f"{path}: {what} needs {len(columns)} columns ({', '.join(columns)}), found {table.shape[1]}"
        )
    table = table.iloc[:, : len(columns)]
    table.columns = columns
    return table


def load_nih_cxr(
    root: str | Path | None = None,
    *,
    image_dir: str | Path | None = None,
    labels_csv: str | Path | None = None,
    bbox_csv: str | Path | None = None,
    boxed_only: bool = False,
    original_size: int = 1024,
) -> list[XrayRecord]:
    """NIH ChestX-ray14 records with findings, and radiologist boxes scaled from the original
    ``original_size`` px square to each stored image's size.

    Default: the embedded 621 images (``root`` = the embedded ``nih_cxr`` folder with
    ``labels.csv``, ``bbox.csv`` and ``images/``). Full profile: ``image_dir`` holding NIH's PNGs
    (e.g. the unpacked ``images_001..012`` archives) with the complete tables of
    :func:`nih_package_tables` (used when ``labels_csv`` / ``bbox_csv`` are not given) and
    ``boxed_only=True`` for the 880 images with boxes. Only images present in ``image_dir`` are
    returned; a listed image whose file is missing is left out (the caller counts it by comparing
    with the table), an unreadable one is skipped later by :class:`ImageDataset`.
    """
    if image_dir is None:
        root = Path(root) if root is not None else fetch_group("nih_cxr")
        image_dir = root / "images"
        labels_csv = labels_csv or root / "labels.csv"
        bbox_csv = bbox_csv or root / "bbox.csv"
    else:
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise DataFileError(f"NIH image folder {image_dir} does not exist")
        package_labels, package_boxes = nih_package_tables()
        labels_csv = labels_csv or package_labels
        bbox_csv = bbox_csv or package_boxes
    labels = _read_table(Path(labels_csv), ["image", "findings"], "the NIH label table (Data_Entry_2017)")
    bbox = _read_table(
        Path(bbox_csv), ["image", "finding", "x", "y", "w", "h"], "the NIH box table (BBox_List_2017)"
    )
    if not np.isfinite(bbox[["x", "y", "w", "h"]].to_numpy(np.float64)).all():
        raise DataFileError(f"{bbox_csv}: box coordinates must be finite numbers")
    bbox["finding"] = bbox["finding"].replace(NIH_BOX_FINDING_NAMES)
    unknown = sorted(set(bbox["finding"]) - set(NIH_FINDINGS))
    if unknown:
        raise DataFileError(f"{bbox_csv}: unknown finding(s) {unknown}; known: {', '.join(NIH_FINDINGS)}")
    if boxed_only:
        labels = labels[labels["image"].isin(set(bbox["image"]))]
    boxes_by_image = dict(list(bbox.groupby("image", sort=False)))
    records = []
    for name, finding_text in zip(labels["image"], labels["findings"]):
        path = image_dir / name
        if not path.is_file():
            continue
        size = image_size(path)
        findings = tuple(f for f in str(finding_text).split("|") if f in NIH_FINDINGS)
        scale = np.array([size[0], size[1]] * 2, np.float32) / original_size
        boxes: dict[str, list] = {}
        if name in boxes_by_image:
            for row in boxes_by_image[name].itertuples(index=False):
                xyxy = np.array([row.x, row.y, row.x + row.w, row.y + row.h], np.float32) * scale
                boxes.setdefault(row.finding, []).append(xyxy)
        boxes = {k: clip_boxes(np.stack(v), size, f"{bbox_csv} ({name})") for k, v in boxes.items()}
        records.append(XrayRecord(path, findings, boxes, size))
    return records


# --------------------------------------------------------------------------------------------
# MNIST and CIFAR-10
# --------------------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (possibly gzipped) IDX file (LeCun's MNIST format) into a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataFileError(f"{path}: IDX file is missing") from None
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path}: unreadable IDX file ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFileError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataFileError(f"{path}: holds {data.size} values, header says {dims}")
    return data.reshape(dims)


def load_mnist(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test digits: ``(images uint8 (N, 28, 28), labels int64 (N,))``."""
    root = Path(root) if root is not None else fetch_group("mnist")
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    if len(images) != len(labels):
        raise DataFileError(f"{root}: {len(images)} images but {len(labels)} labels")
    return images, labels


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(
    split: str = "train", root: str | Path | None = None, source: str = "embedded"
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 as ``(images uint8 (N, 32, 32, 3), labels int64 (N,))``.

    ``source="embedded"`` reads the image-folder layout ``<root>/<split>/<class>/*.jpg`` (the
    mirror's re-encoded subset: 20,000 train, 10,000 test); ``source="torchvision"`` uses
    torchvision's official download into ``root`` (needs internet the first time).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source == "torchvision":
        from torchvision.datasets import CIFAR10

        dataset = CIFAR10(
            str(root or cache_dir() / "cifar10-official"), train=split == "train", download=True
        )
        return np.asarray(dataset.data, np.uint8), np.asarray(dataset.targets, np.int64)
    if source != "embedded":
        raise ValueError(f"source must be 'embedded' or 'torchvision', got {source!r}")
    root = Path(root) if root is not None else fetch_group("cifar10")
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        files = sorted((root / split / name).glob("*.jpg"))
        if not files:
            raise DataFileError(f"{root / split / name}: no .jpg files")
        for path in files:
            images.append(np.asarray(load_rgb(path)))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int64)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser, commands = cli.command_parser("gradcam_core.data", __doc__)
    fetch_command = commands.add_parser("fetch", help="fetch embedded files into the cache")
    fetch_command.add_argument("groups", nargs="*", help=f"groups (default all): {', '.join(GROUPS)}")
    build = commands.add_parser("build-manifest", help="rebuild data/manifest.csv.gz from a MANIFEST.csv")
    build.add_argument("source", type=Path)
    args = parser.parse_args(argv)
    # bad files, an unknown group, a failed download
    return cli.run(lambda: _command(args), (ValueError, OSError, ChecksumError))


def _command(args) -> None:
    if args.command == "fetch":
        report = fetch(args.groups or None)
        print(f"{len(report.fetched)} fetched, {report.present} already present in {report.root}")
    else:
        print(f"{build_manifest(args.source)} rows written to {MANIFEST_PATH}")


if __name__ == "__main__":
    sys.exit(main())
