"""Task 1 at scale, measured in one run on one device: decoding full-size val JPEGs, and Task 1
end to end against plain inference through the same loader, with the boxes extracted in the
model's process or in worker processes, projected to the 50,000 val images.

    python benchmarks/bench_task1.py                     # CPU, SqueezeNet 1.1, 1,300 images
    python benchmarks/bench_task1.py --short             # CI: 8 images, same code
    python benchmarks/bench_task1.py --model vgg16 --device cuda --batch 128 --num-workers 12 \\
        --box-workers 12                                 # a GPU (VGG-16 with random weights)

The input is the embedded images rescaled to their original sizes (about 500 x 375,
``image_sizes.txt``) and saved as JPEGs (``data.write_full_size_val``), so that decoding costs
what the official val set's does. Decoding is timed three ways: the loader (PIL decode and the
model's transform) with 0 and with ``--num-workers`` worker processes, and
``torchvision.io.decode_jpeg`` on the device, batched, with the same resize and crop there.
Task 1 is the top-5 Grad-CAM (and CAM) maps, a box per map at the paper's 15 % and the ILSVRC
rule (no image-space baselines, no grab-cut, no sweep: the headline's work only), with the boxes
made by opencv in the model's process, by opencv in ``--box-workers`` worker processes, and (on a
GPU, or with ``--boxes-on-device``) on the model's device by kornia's connected components; plain
inference is the model's forward pass and top 5; Task 1's maps without their boxes (the forward pass
and the head-only backward of the top-5 maps) is the floor that the boxes add to. Each timing is
the second of two runs (the first warms caches, the loader's workers and the box workers' fork
server); ratios compare timings of this run only. Targets (issue 16): Task 1 at most 1.1x plain
inference on the CPU and 1.5x on a GPU; VGG-16 on 50,000 full-size images under 2 minutes on one
H100.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from bench_gradcam import build  # bench_gradcam.py, beside this script
from torchvision.transforms import v2

from gradcam_core import data
from gradcam_core.methods import CAM, GradCAM
from gradcam_core.tasks import localization
from gradcam_core.tasks.common import ImageBatches

VAL_IMAGES = 50_000


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def second_run(fn, device: torch.device) -> float:
    """Seconds of ``fn``'s second run (the first warms up)."""
    fn()
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def loader_decode(model, records, batch: int, workers: int):
    def run():
        for _ in ImageBatches(model, records, batch_size=batch, num_workers=workers, progress=False):
            pass

    return run


def device_decode(model, records, batch: int):
    """``torchvision.io.decode_jpeg`` of a batch of files on the model's device, then the
    model's resize and centre crop and normalisation there (files read on the CPU)."""
    size, crop = 256, 224
    mean = torch.tensor([0.485, 0.456, 0.406], device=model.device)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], device=model.device)[:, None, None]

    def run():
        for first in range(0, len(records), batch):
            encoded = [torchvision.io.read_file(str(r.path)) for r in records[first : first + batch]]
            decoded = torchvision.io.decode_jpeg(encoded, device=model.device)
            images = [
                v2.functional.center_crop(v2.functional.resize(im, size, antialias=True), crop)
                for im in decoded
            ]
            ((torch.stack(images).float() / 255 - mean) / std).sum()

    return run


def plain_inference(model, records, batch: int, workers: int):
    def run():
        with torch.no_grad():
            for images, _ in ImageBatches(
                model, records, batch_size=batch, num_workers=workers, progress=False
            ):
                model(images).topk(5, 1)

    return run


def maps_only(model, records, batch: int, workers: int):
    """Task 1's maps without their boxes: the forward pass and the top-5 Grad-CAM (and CAM) maps
    from its head-only backward, as ``run_localization`` makes them -- the floor that boxes add to."""
    gradcam = GradCAM(model)
    cam = CAM(model) if model.spec.cam_compatible else None

    def run():
        for images, _ in ImageBatches(model, records, batch_size=batch, num_workers=workers, progress=False):
            forward = gradcam.forward(images)
            classes = forward.logits.detach().topk(5, 1).indices
            gradcam.maps(forward, classes)
            if cam is not None:
                cam.maps(forward, classes)

    return run


def task1(model, records, batch: int, workers: int, box_workers: int, on_device: bool = False):
    methods = ("grad-cam", "cam") if model.spec.cam_compatible else ("grad-cam",)

    def run():
        return localization.run_localization(
            model,
            records,
            thresholds=(localization.PAPER_THRESHOLD,),
            methods=methods,
            batch_size=batch,
            num_workers=workers,
            box_workers=box_workers,
            boxes_on_device=on_device,
            progress=False,
        )

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=1300, help="embedded images, made full size")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2, help="the loader's decoding processes")
    parser.add_argument("--box-workers", type=int, default=1, help="processes extracting boxes")
    parser.add_argument(
        "--folder", type=Path, help="keep the full-size JPEGs here (default: a temporary folder)"
    )
    parser.add_argument(
        "--boxes-on-device",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time Task 1 with the boxes made on the model's device (kornia; default: on a GPU)",
    )
    parser.add_argument("--short", action="store_true", help="tiny sizes (CI): 8 images, batch 4")
    args = parser.parse_args(argv)
    if args.short:
        args.images, args.batch = 8, 4
    torch.manual_seed(0)
    model = build(args.model, args.device)
    device = model.device
    print(
        f"model={args.model} device={device} images={args.images} batch={args.batch} "
        f"loader workers={args.num_workers} box workers={args.box_workers} torch={torch.__version__} "
        f"threads={torch.get_num_threads()}"
        + (f" gpu={torch.cuda.get_device_name(0)}" if device.type == "cuda" else "")
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = data.write_full_size_val(data.load_ilsvrc_val(n_images=args.images), args.folder or scratch)
        records = data.load_ilsvrc_val(folder)
        pixels = sum(r.size[0] * r.size[1] for r in records) / len(records)
        print(f"{len(records)} full-size JPEGs, {pixels / 1e3:.0f} thousand pixels per image on average")

        rows = []
        for workers in sorted({0, args.num_workers}):
            rows.append(
                (
                    f"decode: loader, {workers} workers",
                    second_run(loader_decode(model, records, args.batch, workers), device),
                )
            )
        rows.append(
            (
                f"decode: decode_jpeg on {device.type}, batched",
                second_run(device_decode(model, records, args.batch), device),
            )
        )
        plain = second_run(plain_inference(model, records, args.batch, args.num_workers), device)
        rows.append(("plain inference (forward, top 5)", plain))
        rows.append(
            (
                "Task 1's maps, no boxes (forward, head-only backward)",
                second_run(maps_only(model, records, args.batch, args.num_workers), device),
            )
        )
        for box_workers in sorted({0, args.box_workers}):
            where = f"{box_workers} box worker processes" if box_workers else "boxes in the model's process"
            rows.append(
                (
                    f"Task 1, {where}",
                    second_run(task1(model, records, args.batch, args.num_workers, box_workers), device),
                )
            )
        if args.boxes_on_device or (args.boxes_on_device is None and device.type == "cuda"):
            rows.append(
                (
                    f"Task 1, boxes on the {device.type} (kornia)",
                    second_run(
                        task1(model, records, args.batch, args.num_workers, 0, on_device=True), device
                    ),
                )
            )

    title = f"{args.model} on {device.type}, {len(records)} full-size images"
    print(f"\n| {title} | seconds | images/s | x plain inference | 50,000 images (min) |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds in rows:
        ratio = f"{seconds / plain:.2f}" if not label.startswith("decode") else ""
        print(
            f"| {label} | {seconds:.2f} | {len(records) / seconds:.0f} | {ratio} | "
            f"{VAL_IMAGES * seconds / len(records) / 60:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
