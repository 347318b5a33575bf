"""Every explainer against its peer and against its physical floor, plus end-to-end Task 1
throughput, measured in one run on one device:

    python benchmarks/bench_explainers.py                        # CPU, SqueezeNet 1.1, full
    python benchmarks/bench_explainers.py --short                # CI: tiny sizes, same code
    python benchmarks/bench_explainers.py --model vgg16 --device cuda --batch 64   # a GPU

| explainer | peer | floor |
|---|---|---|
| Grad-CAM | pytorch-grad-cam GradCAM, captum LayerGradCam | one plain forward |
| Grad-CAM++ | pytorch-grad-cam GradCAMPlusPlus | one plain forward |
| Guided Backprop | captum GuidedBackprop | one forward + backward to the input |
| Occlusion | captum Occlusion | windows x one plain forward per image (batched) |
| Integrated Gradients | captum IntegratedGradients | steps x (forward + backward) |

Each peer's maps are compared with ours before timing (max absolute difference of the
normalised maps is printed beside the times; pytorch-grad-cam's Grad-CAM++ differs by design, see
``methods.GradCAMPlusPlus``). Timings are medians of ``--repeats`` runs after a warm-up; no timing
is asserted anywhere (the CI runs ``--short`` to keep this script working). VGG-16 runs with random
weights (same cost as the ImageNet model, whose weights cannot be had offline).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch
from bench_gradcam import build, load_batch, timed  # bench_gradcam.py, beside this script

from gradcam_core import data, methods
from gradcam_core.maps import normalize_maps
from gradcam_core.tasks import localization
from gradcam_core.tasks.common import PRECISIONS, ImageBatches, autocast


def max_diff(ours: torch.Tensor, theirs) -> float:
    """Max |difference| of two sets of maps after the report's normalisation."""
    theirs = torch.as_tensor(theirs).to(ours.device, torch.float32).reshape(ours.shape)
    return float((normalize_maps(ours.float()) - normalize_maps(theirs)).abs().max())


def trainable_copy(model):
    """pytorch-grad-cam runs as its users do: parameters trainable."""
    module = copy.deepcopy(model.module)
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    return module


def bench(args) -> list[dict]:
    from captum.attr import GuidedBackprop as CaptumGB
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import LayerAttribution, LayerGradCam
    from captum.attr import Occlusion as CaptumOcclusion
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam import GradCAMPlusPlus as PGCPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = build(args.model, args.device)
    x = load_batch(model, args.batch)
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        labels = model(x).argmax(1)
    rows = []

    def plain():
        with torch.no_grad():
            return model(x)

    def forward_backward():
        inputs = x.detach().requires_grad_(True)
        model(inputs).gather(1, labels[:, None]).sum().backward()
        return inputs.grad

    t_plain, _ = timed(plain, args.repeats)
    t_fb, _ = timed(forward_backward, args.repeats)
    rows.append({"method": "floor: plain forward", "impl": "-", "seconds": t_plain, "floor": t_plain})
    rows.append({"method": "floor: forward + backward", "impl": "-", "seconds": t_fb, "floor": t_fb})

    # Grad-CAM
    t, ours = timed(lambda: methods.GradCAM(model).attribute(x, labels), args.repeats)
    rows.append({"method": "grad-cam", "impl": "ours", "seconds": t, "floor": t_plain})
    trainable = trainable_copy(model)
    layer = [dict(trainable.named_modules())[model.spec.target_layer]]
    targets = [ClassifierOutputTarget(int(c)) for c in labels]
    t, theirs = timed(lambda: PGCGradCAM(trainable, layer)(x, targets=targets), args.repeats)
    rows.append(
        {
            "method": "grad-cam",
            "impl": "pytorch-grad-cam",
            "seconds": t,
            "floor": t_plain,
            "max diff": max_diff(ours, theirs),
        }
    )
    lgc = LayerGradCam(model.module, model.layer())
    t, theirs = timed(
        lambda: LayerAttribution.interpolate(
            lgc.attribute(x, target=labels, relu_attributions=True), size, "bilinear"
        ),
        args.repeats,
    )
    rows.append(
        {
            "method": "grad-cam",
            "impl": "captum",
            "seconds": t,
            "floor": t_plain,
            "max diff": max_diff(ours, theirs.detach()),
        }
    )

    # Grad-CAM++
    t, ours = timed(lambda: methods.GradCAMPlusPlus(model).attribute(x, labels), args.repeats)
    rows.append({"method": "grad-cam++", "impl": "ours", "seconds": t, "floor": t_plain})
    t, theirs = timed(lambda: PGCPlusPlus(trainable, layer)(x, targets=targets), args.repeats)
    rows.append(
        {
            "method": "grad-cam++",
            "impl": "pytorch-grad-cam",
            "seconds": t,
            "floor": t_plain,
            "max diff": max_diff(ours, theirs),
            "note": "no exp(S), +1e-6 in alpha: differs by design",
        }
    )

    # Guided Backprop
    t, ours = timed(lambda: methods.GuidedBackprop(model).attribute(x, labels), args.repeats)
    rows.append({"method": "guided-backprop", "impl": "ours", "seconds": t, "floor": t_fb})
    gb = CaptumGB(model.module)
    t, theirs = timed(lambda: gb.attribute(x, target=labels).abs().amax(1), args.repeats)
    rows.append(
        {
            "method": "guided-backprop",
            "impl": "captum",
            "seconds": t,
            "floor": t_fb,
            "max diff": max_diff(ours, theirs.detach()),
        }
    )

    # Occlusion, on the first images only (windows x forward each)
    xo, lo = x[: args.occlusion_images], labels[: args.occlusion_images]
    occlusion = methods.Occlusion(model, patch_size=args.patch, stride=args.stride, batch_size=args.batch)
    windows = len(occlusion.windows(*size))
    per_image = (windows + args.batch - 1) // args.batch  # forward passes of `batch` windows per image
    t_floor_occ = per_image * len(xo) * t_plain + t_plain * len(xo) / len(x)
    t, ours = timed(lambda: occlusion.attribute(xo, lo), args.repeats)
    rows.append(
        {
            "method": f"occlusion ({len(xo)} images, {windows} windows)",
            "impl": "ours",
            "seconds": t,
            "floor": t_floor_occ,
        }
    )
    occ = CaptumOcclusion(model.module)
    t, theirs = timed(
        lambda: occ.attribute(
            xo,
            target=lo,
            sliding_window_shapes=(3, args.patch, args.patch),
            strides=(3, args.stride, args.stride),
            baselines=0.0,
            perturbations_per_eval=args.batch,
        ).sum(1),
        args.repeats,
    )
    rows.append(
        {
            "method": f"occlusion ({len(xo)} images, {windows} windows)",
            "impl": "captum",
            "seconds": t,
            "floor": t_floor_occ,
            "max diff": max_diff(ours, theirs.detach()),
        }
    )

    # Integrated Gradients
    t, ours = timed(
        lambda: methods.IntegratedGradients(
            model, n_steps=args.ig_steps, internal_batch_size=args.batch * 4
        ).attribute(x, labels),
        args.repeats,
    )
    rows.append(
        {
            "method": f"integrated-gradients ({args.ig_steps} steps)",
            "impl": "ours (captum inside)",
            "seconds": t,
            "floor": args.ig_steps * t_fb,
        }
    )
    ig = CaptumIG(model.module)
    t, theirs = timed(
        lambda: ig.attribute(x, target=labels, n_steps=args.ig_steps, internal_batch_size=args.batch * 4).sum(
            1
        ),
        args.repeats,
    )
    rows.append(
        {
            "method": f"integrated-gradients ({args.ig_steps} steps)",
            "impl": "captum",
            "seconds": t,
            "floor": args.ig_steps * t_fb,
            "max diff": max_diff(ours, theirs.detach()),
        }
    )
    return rows


def bench_task1(args) -> dict:
    """End to end through the same DataLoader: plain inference vs the Task 1 run (top-5 Grad-CAM
    and CAM maps, boxes at the paper's threshold, the ILSVRC rule), loading included."""
    model = build(args.model, args.device)
    records = data.load_ilsvrc_val(n_images=args.task1_images)

    def plain_inference():
        batches = ImageBatches(
            model, records, batch_size=args.batch, num_workers=args.num_workers, progress=False
        )
        with torch.no_grad():
            for images, _ in batches:
                model(images).topk(5, 1)
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def task1():
        return localization.run_localization(
            model,
            records,
            thresholds=(0.15,),
            batch_size=args.batch,
            num_workers=args.num_workers,
            precision=args.precision,
            box_workers=args.box_workers,
            methods=("grad-cam", "cam") if model.spec.cam_compatible else ("grad-cam",),
            progress=False,
        )

    plain_inference()  # warm-up (and page cache)
    start = time.perf_counter()
    plain_inference()
    t_plain = time.perf_counter() - start
    task1()
    start = time.perf_counter()
    task1()
    t_task = time.perf_counter() - start
    return {"images": len(records), "plain": t_plain, "task1": t_task}


def precision_check(args) -> None:
    """Grad-CAM maps in bf16 and fp16 autocast against fp32, after normalisation."""
    model = build(args.model, args.device)
    x = load_batch(model, args.batch)
    with torch.no_grad():
        labels = model(x).argmax(1)
    reference = normalize_maps(methods.GradCAM(model).attribute(x, labels).float())
    for precision in ("bf16", "fp16"):
        with autocast(x.device, precision):
            low = methods.GradCAM(model).attribute(x, labels)
        diff = (normalize_maps(low.float()) - reference).abs()
        print(f"{args.model} {precision}: max |normalised map - fp32| = {diff.max():.4f}, ", end="")
        print(f"mean {diff.mean():.5f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--occlusion-images", type=int, default=2)
    parser.add_argument("--patch", type=int, default=45)
    parser.add_argument("--stride", type=int, default=15)
    parser.add_argument("--task1-images", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--box-workers", type=int, default=0, help="Task 1: processes extracting boxes")
    parser.add_argument("--task1-only", action="store_true", help="only the end-to-end Task 1 throughput")
    parser.add_argument(
        "--precision-check", action="store_true", help="only Grad-CAM in bf16/fp16 against fp32 (maps)"
    )
    parser.add_argument("--short", action="store_true", help="tiny sizes (CI): batch 2, 1 repeat, 4 IG steps")
    args = parser.parse_args(argv)
    if args.short:
        args.batch, args.repeats, args.ig_steps, args.occlusion_images, args.task1_images = 2, 1, 4, 1, 8
        args.stride = 45
    torch.manual_seed(0)
    print(
        f"model={args.model} device={args.device} batch={args.batch} repeats={args.repeats} "
        f"torch={torch.__version__} threads={torch.get_num_threads()}"
        + (f" gpu={torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "")
    )
    if args.precision_check:
        precision_check(args)
        return 0
    rows = [] if args.task1_only else bench(args)
    ours = {r["method"]: r["seconds"] for r in rows if r["impl"].startswith("ours")}
    if rows:
        print(
            "\n| method | implementation | seconds | x floor | ours faster by | max diff (normalised maps) |"
        )
        print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        faster = (
            f"{r['seconds'] / ours[r['method']]:.1f}x"
            if r["method"] in ours and not r["impl"].startswith("ours")
            else ""
        )
        diff = f"{r['max diff']:.1e}" if "max diff" in r else ""
        note = f" ({r['note']})" if "note" in r else ""
        print(
            f"| {r['method']} | {r['impl']}{note} | {r['seconds']:.4f} | {r['seconds'] / r['floor']:.2f} | "
            f"{faster} | {diff} |"
        )
    result = bench_task1(args)
    images, plain, task1 = result["images"], result["plain"], result["task1"]
    setup = f"batch {args.batch}, {args.num_workers} loader workers, {args.box_workers} box processes"
    print(
        f"\nTask 1 end to end, {images} embedded images, {setup}, {args.precision}: "
        f"plain inference {plain:.2f} s "
        f"({images / plain:.0f} images/s), Task 1 {task1:.2f} s ({images / task1:.0f} images/s), "
        f"ratio {task1 / plain:.2f}; "
        f"projected for the 50,000 val images: {50000 * task1 / images / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
