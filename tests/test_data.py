"""Data layer: manifest, verified fetch, image loading, dataset loaders."""

from __future__ import annotations

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gradcam_core import data


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------ manifest


def test_manifest_lists_every_embedded_file_with_hash_and_url():
    manifest = data.read_manifest()
    assert len(manifest) == 32047
    assert manifest["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    from_web = manifest["url"].str.startswith("https://")
    assert manifest.loc[~from_web, "url"].str.startswith("torchxrayvision==").all() and (~from_web).sum() == 2
    for group in data.GROUPS:
        assert manifest["path"].str.startswith(group + "/").any(), group
    counts = {g: int(manifest["path"].str.startswith(g + "/").sum()) for g in data.GROUPS}
    assert counts["ilsvrc2012_val_1300"] == 1303 and counts["cifar10"] == 30000 and counts["mnist"] == 2


# ------------------------------------------------------------------------------ fetch


def test_fetch_copies_from_mirror_verifies_and_second_fetch_does_nothing(tmp_path, monkeypatch):
    first = data.fetch("mnist", cache=tmp_path, progress=False)
    assert sorted(first.fetched) == ["mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"]
    manifest = data.read_manifest().set_index("path")
    for rel in first.fetched:
        assert data.sha256_of(tmp_path / rel) == manifest.loc[rel, "sha256"]

    def must_not_fetch(*args, **kwargs):
        raise AssertionError("a file was fetched although all were present")

    monkeypatch.setattr(data, "fetch_file", must_not_fetch)
    second = data.fetch("mnist", cache=tmp_path, progress=False)
    assert second.fetched == [] and second.present == 2


def test_hash_mismatch_names_file_and_both_hashes_and_leaves_nothing(tmp_path):
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    wrong = "0" * 64
    with pytest.raises(data.ChecksumError) as err:
        data.fetch_file(rel, wrong, "https://example.invalid/x", cache=tmp_path, mirror=data.mirror_dir())
    message = str(err.value)
    actual = data.read_manifest().set_index("path").loc[rel, "sha256"]
    assert rel in message and wrong in message and actual in message
    assert _files_under(tmp_path) == []  # neither the final name nor a temporary file


def test_fetch_downloads_from_url_without_mirror(tmp_path, monkeypatch):
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    row = data.read_manifest().set_index("path").loc[rel]
    payload = (data.mirror_dir() / rel).read_bytes()
    seen = []

    def fake_download(url, dest):
        seen.append(url)
        Path(dest).write_bytes(payload)

    monkeypatch.setattr(data, "_download", fake_download)
    path = data.fetch_file(rel, row["sha256"], row["url"], cache=tmp_path, mirror=None)
    assert seen == [row["url"]] and path.read_bytes() == payload


@pytest.mark.parametrize("rel", ["nih_cxr/labels.csv", "nih_cxr/bbox.csv"])
def test_nih_tables_are_rebuilt_byte_exact_from_torchxrayvision(tmp_path, rel):
    row = data.read_manifest().set_index("path").loc[rel]
    path = data.fetch_file(rel, row["sha256"], row["url"], cache=tmp_path, mirror=None)
    assert path.read_bytes() == (data.mirror_dir() / rel).read_bytes()


def test_failed_download_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken(url, dest):
        Path(dest).write_bytes(b"half a file")
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(data, "_download", broken)
    with pytest.raises(OSError, match="cannot download mnist/x.gz from https://example.invalid/x.gz"):
        data.fetch_file("mnist/x.gz", "0" * 64, "https://example.invalid/x.gz", cache=tmp_path, mirror=None)
    assert _files_under(tmp_path) == []


def test_mirror_from_environment_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADCAM_DATA_MIRROR", str(tmp_path / "nope"))
    with pytest.raises(data.DataFileError, match="GRADCAM_DATA_MIRROR"):
        data.mirror_dir()


def test_unknown_group_is_refused():
    with pytest.raises(ValueError, match="unknown data group.*known groups"):
        data.fetch("imagenet21k", progress=False)


# ------------------------------------------------------------------------------ images


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def test_corrupt_jpeg_fails_naming_the_file(tmp_path):
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    with pytest.raises(data.ImageLoadError, match="corrupt.jpg"):
        data.load_rgb(path)


def test_truncated_png_fails_naming_the_file(tmp_path):
    good = _save(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), tmp_path / "a.png"
    )
    path = tmp_path / "truncated.png"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(data.ImageLoadError, match="truncated.png"):
        data.load_rgb(path)


def test_zero_byte_and_missing_files_fail_naming_the_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(data.ImageLoadError, match="empty.jpg"):
        data.load_rgb(tmp_path / "empty.jpg")
    with pytest.raises(data.ImageLoadError, match="missing.jpg"):
        data.load_rgb(tmp_path / "missing.jpg")


def test_cmyk_jpeg_loads_as_rgb(tmp_path):
    path = _save(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")  # pure red in CMYK
    image = data.load_rgb(path)
    assert image.mode == "RGB" and image.size == (20, 10)
    r, g, b = np.asarray(image).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_rgba_png_loads_as_rgb_dropping_alpha(tmp_path):
    path = _save(Image.new("RGBA", (8, 6), (10, 20, 30, 0)), tmp_path / "rgba.png")
    image = data.load_rgb(path)
    assert image.mode == "RGB" and np.asarray(image)[0, 0].tolist() == [10, 20, 30]


def test_grayscale_loads_as_three_equal_channels(tmp_path):
    path = _save(Image.new("L", (5, 5), 77), tmp_path / "gray.png")
    assert np.asarray(data.load_rgb(path))[2, 2].tolist() == [77, 77, 77]


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    array = np.full((4, 4), 65535, np.uint16)
    array[0, 0] = 0
    path = _save(Image.fromarray(array), tmp_path / "deep.png")
    loaded = np.asarray(data.load_rgb(path))
    assert loaded[1, 1].tolist() == [255, 255, 255] and loaded[0, 0].tolist() == [0, 0, 0]


# ------------------------------------------------------------------------------ ILSVRC


def test_embedded_ilsvrc_records_labels_and_boxes(ilsvrc_records):
    assert len(ilsvrc_records) == 1300
    first = ilsvrc_records[0]
    assert first.name == "ILSVRC2012_val_00000347.JPEG" and first.label == 472 and first.class_name == "canoe"
    assert first.size == (227, 227)
    # by hand: image_sizes.txt and localization.txt of this image, scaled by 227/W, 227/H
    sizes_line = next(
        line
        for line in (data.fetch_group("ilsvrc2012_val_boxes") / "image_sizes.txt").read_text().splitlines()
        if line.startswith("val/ILSVRC2012_val_00000347.JPEG,")
    )
    w, h = map(int, sizes_line.split(",")[1:])
    boxes_lines = [
        line
        for line in (data.fetch_group("ilsvrc2012_val_boxes") / "localization.txt").read_text().splitlines()
        if line.startswith("val/ILSVRC2012_val_00000347.JPEG,")
    ]
    expected = np.array([[float(v) for v in line.split(",")[1:]] for line in boxes_lines]) * np.array(
        [227 / w, 227 / h] * 2
    )
    np.testing.assert_allclose(first.boxes, expected, rtol=1e-5)
    assert first.original_size == (w, h) and first.pixel_scale == (w / 227, h / 227)
    assert all(r.boxes.shape[1] == 4 and len(r.boxes) >= 1 for r in ilsvrc_records)
    stacked = np.concatenate([r.boxes for r in ilsvrc_records])
    assert stacked.min() >= 0 and stacked.max() <= 227
    labels = [
        int(line.split(",")[1])
        for line in (data.fetch_group("ilsvrc2012_val_1300") / "dataset.txt").read_text().splitlines()
    ]
    assert [r.label for r in ilsvrc_records] == labels


def test_full_size_val_folder_layout_gets_boxes_in_its_own_pixels(tmp_path, ilsvrc_records):
    labels, sizes, boxes = data.read_ilsvrc_boxes()
    # "official" full-size files rebuilt from the embedded ones
    assert data.write_full_size_val(ilsvrc_records[:3], tmp_path / "val") == tmp_path / "val"
    assert {data.load_rgb(p).size for p in (tmp_path / "val").iterdir()} == {
        sizes[r.name] for r in ilsvrc_records[:3]
    }
    records = data.load_ilsvrc_val(image_dir=tmp_path / "val")
    assert [r.name for r in records] == sorted(r.name for r in ilsvrc_records[:3])
    for r in records:
        assert r.size == sizes[r.name] and r.label == labels[r.name]
        assert r.original_size == r.size and r.pixel_scale == (1.0, 1.0)
        np.testing.assert_allclose(r.boxes, boxes[r.name], rtol=1e-6)  # original pixels, unscaled


def test_val_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(data.DataFileError, match="no ILSVRC2012_val_"):
        data.load_ilsvrc_val(image_dir=tmp_path)
    with pytest.raises(data.DataFileError, match="does not exist"):
        data.load_ilsvrc_val(image_dir=tmp_path / "absent")


# ------------------------------------------------------------------------------ NIH, MNIST, CIFAR-10


def test_nih_records_with_boxes_scaled_to_stored_size():
    records = data.load_nih_cxr()
    assert len(records) == 621
    boxed = [r for r in records if r.boxes]
    assert len(boxed) == 12
    first = next(r for r in records if r.path.name == "00004296_000.png")
    assert first.size == (256, 256)
    # bbox.csv: Atelectasis, x=731.43, y=753.10, w=119.20, h=93.19 in 1024 px -> x 256/1024
    x, y, w, h = 731.428571428571, 753.100529100529, 119.195767195767, 93.189417989418
    np.testing.assert_allclose(first.boxes["Atelectasis"][0], np.array([x, y, x + w, y + h]) / 4, rtol=1e-5)
    assert "Atelectasis" in first.findings


def test_mnist_test_set():
    images, labels = data.load_mnist()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(10))


def test_idx_with_bad_magic_is_refused(tmp_path):
    path = tmp_path / "bad.idx.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">I", 0x0000_0D03) + b"\0" * 10)
    with pytest.raises(data.DataFileError, match="bad.idx.gz.*magic"):
        data.read_idx(path)


def test_cifar10_test_split_from_image_folders():
    images, labels = data.load_cifar10("test")
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


def test_cifar10_official_source_goes_through_torchvision(monkeypatch, tmp_path):
    calls = {}

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.update(root=root, train=train, download=download)
            self.data = np.zeros((2, 32, 32, 3), np.uint8)
            self.targets = [3, 5]

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    images, labels = data.load_cifar10("test", root=tmp_path, source="torchvision")
    assert calls == {"root": str(tmp_path), "train": False, "download": True}
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [3, 5]
    with pytest.raises(ValueError, match="split must be"):
        data.load_cifar10("val")


def test_image_dataset_skips_and_counts_unreadable_images(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    good = _save(Image.new("RGB", (8, 8), (1, 2, 3)), tmp_path / "good.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")

    class Rec:
        def __init__(self, path):
            self.path = path

    dataset = data.ImageDataset([Rec(good), Rec(bad), Rec(good)], lambda im: torch.as_tensor(np.asarray(im)))
    images, indices, failed = next(iter(DataLoader(dataset, batch_size=3, collate_fn=data.collate_skipping)))
    assert images.shape == (2, 8, 8, 3) and indices == [0, 2] and failed == [1]


def _nih_full_layout(folder, size=128):
    """A tiny NIH-style folder: three PNGs at ``size`` px and full-profile tables."""
    from PIL import Image

    images = folder / "images"
    images.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((size, size), 90, np.uint8)).save(images / name)
    labels = folder / "Data_Entry_2017.csv"
    labels.write_text(
        "Image Index,Finding Labels,Follow-up #\na.png,Infiltration|Mass,0\nb.png,No Finding,0\n"
        "c.png,Nodule,0\nabsent.png,Nodule,0\n"
    )
    boxes = folder / "BBox_List_2017.csv"
    boxes.write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Infiltrate,100,200,300,400\n"
        "a.png,Mass,0,0,1024,512\nc.png,Nodule,512,512,10,10\nabsent.png,Nodule,1,1,2,2\n"
    )
    return images, labels, boxes


def test_nih_full_profile_layout_boxed_only_with_scaled_boxes(tmp_path):
    images, labels, boxes = _nih_full_layout(tmp_path)
    records = data.load_nih_cxr(image_dir=images, labels_csv=labels, bbox_csv=boxes, boxed_only=True)
    assert [r.name for r in records] == ["a.png", "c.png"]  # b has no box, absent.png has no file
    a = records[0]
    assert a.findings == ("Infiltration", "Mass") and set(a.boxes) == {"Infiltration", "Mass"}  # renamed
    np.testing.assert_allclose(a.boxes["Infiltration"][0], np.array([100, 200, 400, 600]) * 128 / 1024)
    everything = data.load_nih_cxr(image_dir=images, labels_csv=labels, bbox_csv=boxes)
    assert [r.name for r in everything] == ["a.png", "b.png", "c.png"] and everything[1].boxes == {}


def test_nih_full_profile_defaults_to_the_tables_inside_torchxrayvision():
    labels_csv, bbox_csv = data.nih_package_tables()
    assert labels_csv.is_file() and bbox_csv.is_file()
    assert len(pd.read_csv(bbox_csv)) == 984


def test_nih_bad_tables_name_the_file(tmp_path):
    images, labels, boxes = _nih_full_layout(tmp_path)
    with pytest.raises(data.DataFileError, match="does not exist"):
        data.load_nih_cxr(image_dir=tmp_path / "nowhere")
    bad = tmp_path / "bad_boxes.csv"
    bad.write_text("Image Index,Finding Label\na.png,Mass\n")
    with pytest.raises(data.DataFileError, match="bad_boxes.csv.*6 columns"):
        data.load_nih_cxr(image_dir=images, labels_csv=labels, bbox_csv=bad)
    bad.write_text("Image Index,Finding Label,x,y,w,h\na.png,Fracture,1,2,3,4\n")
    with pytest.raises(data.DataFileError, match="unknown finding.*Fracture"):
        data.load_nih_cxr(image_dir=images, labels_csv=labels, bbox_csv=bad)
    bad.write_text("Image Index,Finding Label,x,y,w,h\na.png,Mass,1,nan,3,4\n")
    with pytest.raises(data.DataFileError, match="finite"):
        data.load_nih_cxr(image_dir=images, labels_csv=labels, bbox_csv=bad)
    with pytest.raises(data.DataFileError, match="missing.csv.*does not exist"):
        data.load_nih_cxr(image_dir=images, labels_csv=tmp_path / "missing.csv", bbox_csv=boxes)


# ------------------------------------------------------------------------------ weights files


def test_read_weights_file_loads_on_the_cpu_and_names_bad_files(tmp_path):
    import torch

    torch.save({"w": torch.arange(3.0)}, tmp_path / "ok.pt")
    assert torch.equal(data.read_weights_file(tmp_path / "ok.pt")["w"], torch.arange(3.0))
    with pytest.raises(data.WeightsUnavailableError, match=r"^weights file .*absent.pt does not exist$"):
        data.read_weights_file(tmp_path / "absent.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(data.WeightsUnavailableError, match=r"^cannot read chexnet weights file .*bad.pt: "):
        data.read_weights_file(tmp_path / "bad.pt", "chexnet weights file")
    module = torch.nn.Linear(2, 1)
    torch.save(module, tmp_path / "module.pt")  # a pickled module, as torchxrayvision ships them
    with pytest.raises(data.WeightsUnavailableError, match="cannot read weights file"):
        data.read_weights_file(tmp_path / "module.pt")  # weights_only by default
    loaded = data.read_weights_file(tmp_path / "module.pt", weights_only=False)
    assert isinstance(loaded, torch.nn.Linear) and torch.equal(loaded.weight, module.weight)


def test_embedded_is_the_default_source_by_name():
    by_name, default = data.load_ilsvrc_val("embedded", n_images=3), data.load_ilsvrc_val(n_images=3)
    assert [(r.path, r.label, r.size) for r in by_name] == [(r.path, r.label, r.size) for r in default]
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(by_name, default))
