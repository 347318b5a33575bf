"""Grad-CAM cost benchmark: plain inference vs this project's Grad-CAM vs pytorch-grad-cam vs
captum ``LayerGradCam``, same images, same model, one batch, measured in one run.

    python benchmarks/bench_gradcam.py                  # SqueezeNet 1.1 + VGG-16, batch 32, CPU
    python benchmarks/bench_gradcam.py --models squeezenet1_1 --batch 8 --repeats 1   # short

VGG-16 runs with random weights (same cost as the ImageNet ones, which cannot be had offline).
Each timing is the median of ``--repeats`` runs after one warm-up; the table gives seconds and
the ratio to one plain forward pass. Targets (issue 2): top-5 maps <= 1.3x a plain forward;
>= 3x faster than pytorch-grad-cam and >= 2x faster than captum for the same top-5 maps.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from gradcam_core import data, models
from gradcam_core.maps import normalize_maps
from gradcam_core.methods import GradCAM


def load_batch(model: models.LoadedModel, batch: int) -> torch.Tensor:
    records = data.load_ilsvrc_val(n_images=batch)
    return model.preprocess([data.load_rgb(r.path) for r in records])


def build(name: str, device: str) -> models.LoadedModel:
    if name == "vgg16":  # random weights, same architecture and cost as the ImageNet model
        spec = models.get_spec("vgg16")
        torch.manual_seed(0)
        module = models.prepare(__import__("torchvision").models.vgg16(weights=None), torch.device(device))
        return models.LoadedModel(spec, module, data.imagenet_class_names(), torch.device(device))
    return models.load_model(name, device=device)


def timed(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_model(
    name: str, batch: int, repeats: int, device: str, peers: bool = True
) -> list[tuple[str, float]]:
    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = build(name, device)
    x = load_batch(model, batch)
    size = x.shape[-2:]
    ours = GradCAM(model)

    def plain():
        with torch.no_grad():
            return model(x)

    t_plain, _ = timed(plain, repeats)

    t_top1, _ = timed(lambda: ours.attribute_top_k(x, 1), repeats)
    t_top5, (our_maps, _, _) = timed(lambda: ours.attribute_top_k(x, 5), repeats)
    rows = [
        ("plain forward (no_grad)", t_plain),
        ("ours Grad-CAM top-1", t_top1),
        ("ours Grad-CAM top-5", t_top5),
    ]
    if not peers:
        return rows

    # pytorch-grad-cam as its users run it: parameters trainable (it back-propagates into them).
    trainable = copy.deepcopy(model.module)
    for p in trainable.parameters():
        p.requires_grad_(True)
    pgc = PGCGradCAM(trainable, [models.get_layer(trainable, model.spec.target_layer)])

    def pgc_top5():
        with torch.no_grad():
            classes = model(x).topk(5, 1).indices
        return [pgc(x, targets=[ClassifierOutputTarget(int(c)) for c in classes[:, k]]) for k in range(5)]

    t_pgc, pgc_maps = timed(pgc_top5, repeats)

    lgc = LayerGradCam(model.module, model.layer())

    def captum_top5():
        with torch.no_grad():
            classes = model(x).topk(5, 1).indices
        return [
            LayerAttribution.interpolate(
                lgc.attribute(x, target=classes[:, k], relu_attributions=True), tuple(size), "bilinear"
            )
            for k in range(5)
        ]

    t_captum, captum_maps = timed(captum_top5, repeats)

    # the three agree (same normalisation), so the timings compare like with like
    ours_n = normalize_maps(our_maps).cpu()
    diff_pgc = max((ours_n[:, k] - torch.as_tensor(pgc_maps[k])).abs().max().item() for k in range(5))
    diff_captum = max(
        (ours_n[:, k] - normalize_maps(captum_maps[k][:, 0]).cpu()).abs().max().item() for k in range(5)
    )
    print(f"{name}: max |ours - pytorch-grad-cam| = {diff_pgc:.1e}, max |ours - captum| = {diff_captum:.1e}")

    return rows + [("pytorch-grad-cam top-5", t_pgc), ("captum LayerGradCam top-5", t_captum)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["squeezenet1_1", "vgg16"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-peers", action="store_true", help="time only plain inference and ours")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(
        f"device={args.device} batch={args.batch} repeats={args.repeats} torch={torch.__version__} "
        f"threads={torch.get_num_threads()}"
    )
    for name in args.models:
        rows = bench_model(name, args.batch, args.repeats, args.device, peers=not args.no_peers)
        plain = rows[0][1]
        top5 = rows[2][1]
        print(f"\n| {name} | seconds | x plain forward | ours top-5 faster by |")
        print("|---|---:|---:|---:|")
        for label, seconds in rows:
            speedup = (
                f"{seconds / top5:.1f}x" if label.endswith("top-5") and not label.startswith("ours") else ""
            )
            print(f"| {label} | {seconds:.3f} | {seconds / plain:.2f} | {speedup} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
