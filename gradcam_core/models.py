"""Model registry: one entry per model with how to build it, load its weights, preprocess its
input, its default Grad-CAM target layer and its class names.

The default target layer is the last convolutional feature map, as in the paper (Section 3:
"the last convolutional layers [...] have the best compromise between high-level semantics and
detailed spatial information"). Each entry also names its *classifier* -- the last layer, a
``Linear`` or ``1x1 Conv2d`` that maps features to class scores -- and ``class_scores``, the
class-wise operations after it, so explainers can score only the classes they explain (see
:mod:`gradcam_core.methods`).

Embedded (weights in the data mirror, run everywhere): ``squeezenet1_1``, ``mobilenet_v1_0.75``,
and ``squeezenet1_1-pruned`` (SqueezeNet 1.1's weights magnitude-pruned, the trust study's less
accurate model).
Full profile (weights downloaded by torchvision / torchxrayvision on a user's machine, or read
from a local file): ``vgg16``, ``alexnet``, ``googlenet``, ``resnet50``, ``densenet121``,
``chexnet``. Stand-ins trained here (architectures and checkpoints in
:mod:`gradcam_core.standins`, training in :mod:`gradcam_core.training`): ``squeezenet1_1-cxr``,
``mnist-cnn``, ``cifar10-cnn``, and ``mnist-cnn-permuted-labels`` (mnist-cnn trained on permuted
labels, for the sanity checks of :mod:`gradcam_core.tasks.sanity`).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from . import data, standins
from .data import WeightsUnavailableError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnknownModelError(ValueError):
    """The model name is not in the registry; the message lists the known ones."""


class UnknownLayerError(ValueError):
    """The layer name is not in the model; the message lists the model's layers."""


class DeviceError(ValueError):
    """A device that is not a torch device name, or that this machine does not have."""


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def to_pixels(size: int = 224, grayscale: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """Full-frame resize to ``size x size`` (no crop, so boxes scale per axis and stay right),
    as a float tensor of pixels in [0, 1] (one channel when ``grayscale``)."""
    steps = [transforms.Grayscale(1)] if grayscale else []
    return transforms.Compose(
        steps
        + [
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.ToTensor(),
        ]
    )


def normalize_imagenet(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ImageNet mean/std normalisation of [0, 1] pixels (channel dim -3)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def normalize_symmetric(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels to [-1, 1] (x / 127.5 - 1 on 8-bit values), as the TF models expect."""
    return x * 2.0 - 1.0


def normalize_xray(x: torch.Tensor) -> torch.Tensor:
    """torchxrayvision's convention: [0, 1] pixels to [-1024, 1024]."""
    return (x * 2.0 - 1.0) * 1024.0


class Preprocess:
    """``normalize(pixels(image))``: a picklable transform for DataLoader workers."""

    def __init__(self, pixels, normalize):
        self.pixels, self.normalize = pixels, normalize

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(self.pixels(image))


# --------------------------------------------------------------------------------------------
# Class-wise operations after the classifier layer
# --------------------------------------------------------------------------------------------


def scores_identity(z: torch.Tensor) -> torch.Tensor:
    """The classifier's output is the class score."""
    return z


def scores_relu_avgpool(z: torch.Tensor) -> torch.Tensor:
    """SqueezeNet: class score = global average of the rectified 1x1-conv class map."""
    return z.relu().mean(dim=(-2, -1))


# --------------------------------------------------------------------------------------------
# Embedded models
# --------------------------------------------------------------------------------------------

_SQUEEZENET_FIRE_INDICES = (3, 4, 6, 7, 9, 10, 11, 12)


def squeezenet_state_dict(weights_dir: Path) -> dict[str, torch.Tensor]:
    """Map the 52 ONNX-zoo ``squeezenet0_conv{i}_{weight,bias}.npy`` files onto torchvision's
    ``squeezenet1_1`` keys (conv0 -> features.0; Fire k takes convs 1+3k, 2+3k, 3+3k as squeeze,
    expand1x1, expand3x3; conv25 -> classifier.1)."""
    names = {0: "features.0", 25: "classifier.1"}
    for k, index in enumerate(_SQUEEZENET_FIRE_INDICES):
        for offset, part in enumerate(("squeeze", "expand1x1", "expand3x3"), start=1):
            names[3 * k + offset] = f"features.{index}.{part}"
    state = {}
    for conv, prefix in names.items():
        for kind in ("weight", "bias"):
            path = weights_dir / f"squeezenet0_conv{conv}_{kind}.npy"
            if not path.is_file():
                raise data.DataFileError(f"{path}: SqueezeNet weight file is missing")
            state[f"{prefix}.{kind}"] = torch.from_numpy(np.load(path))
    return state


def build_squeezenet1_1(weights_path: str | None = None) -> nn.Module:
    model = torchvision.models.squeezenet1_1(weights=None)
    weights_dir = (
        Path(weights_path) if weights_path else data.fetch_group("weights/squeezenet1_1") / "weights"
    )
    model.load_state_dict(squeezenet_state_dict(weights_dir))
    return model


#: The fraction of each convolution's weights that :func:`build_squeezenet1_1_pruned` sets to 0:
#: of the grid ``PRUNING_GRID``, the one whose top-1 accuracy on the embedded ILSVRC images falls
#: below SqueezeNet 1.1's by the amount closest to the documented ImageNet gap between the paper's
#: VGG-16 and AlexNet (the trust study's pair; :func:`gradcam_core.tasks.user_study.pruning_sweep`
#: measures the grid on every run of Task 4 and the page checks this choice).
PRUNED_FRACTION = 0.275
PRUNING_GRID = (0.1, 0.2, 0.25, 0.275, 0.3, 0.325)


def prune_smallest_weights(module: nn.Module, fraction: float) -> nn.Module:
    """Magnitude pruning, per layer and unstructured: in every convolution and linear layer of
    ``module``, set the ``fraction`` of weights with the smallest absolute value to 0 (ties at
    the threshold included; biases kept). Deterministic, no training: the standard way to get a
    less accurate copy of the same network. Returns ``module``, changed in place."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear) and fraction > 0:
                weight = layer.weight
                count = int(fraction * weight.numel())
                if count:
                    threshold = weight.abs().flatten().kthvalue(count).values
                    weight[weight.abs() <= threshold] = 0.0
    return module


def build_squeezenet1_1_pruned(weights_path: str | None = None, fraction: float | None = None) -> nn.Module:
    """SqueezeNet 1.1 with its embedded weights magnitude-pruned (:func:`prune_smallest_weights`,
    :data:`PRUNED_FRACTION` unless ``fraction`` is given): the same architecture at a lower
    accuracy, the less accurate model of the trust study."""
    return prune_smallest_weights(
        build_squeezenet1_1(weights_path), PRUNED_FRACTION if fraction is None else fraction
    )


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: output size ceil(in / stride), the odd pixel of
    padding going to the bottom/right (asymmetric for stride 2 on even inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:  # symmetric: let the convolution pad (no copy)
            return F.conv2d(
                x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups
            )
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class TFJSClassifierNet(nn.Module):
    """A Keras/TF.js sequential image classifier rebuilt in PyTorch: ``features`` (named after
    the Keras layers) -> global average pool -> ``classifier`` (Linear). Output ``c`` of the
    network is row ``c`` of the classifier, so explainers that read the classifier's weights
    (CAM, class-sliced Grad-CAM) index the right class."""

    def __init__(self, features: nn.Sequential, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def without_background_class(classifier: nn.Linear) -> nn.Linear:
    """A 1001-way TF classifier (output 0 = "background") as the 1,000-way ILSVRC classifier:
    the same layer without its first row, so output ``c`` is ILSVRC class ``c`` both in the
    logits and in ``classifier.weight[c]``."""
    trimmed = nn.Linear(classifier.in_features, classifier.out_features - 1, bias=classifier.bias is not None)
    trimmed.weight.data = classifier.weight.data[1:].clone()
    if classifier.bias is not None:
        trimmed.bias.data = classifier.bias.data[1:].clone()
    return trimmed


def _read_tfjs_weights(folder: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    weights = {}
    for group in manifest:
        raw = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32":
                raise data.DataFileError(
                    f"{folder}: weight {spec['name']} is {spec['dtype']}, expected float32"
                )
            count = int(np.prod(spec["shape"]))
            weights[spec["name"]] = np.frombuffer(raw, "<f4", count, offset).reshape(spec["shape"])
            offset += 4 * count
        if offset != len(raw):
            raise data.DataFileError(
                f"{folder}: shard(s) {group['paths']} hold {len(raw)} bytes, manifest needs {offset}"
            )
    return weights


def _tensor(array) -> torch.Tensor:
    """A writable float32 copy of a (read-only, memory-mapped) weight array."""
    return torch.from_numpy(np.array(array, dtype=np.float32))


def build_tfjs_classifier(folder: Path) -> TFJSClassifierNet:
    """Build a TF.js layers model (``model.json`` + float32 shards) as a PyTorch module, with no
    TensorFlow dependency: Conv2D/DepthwiseConv2D with "same" padding, BatchNormalization (its
    own epsilon), ReLU6, GlobalAveragePooling2D, and the final 1x1 ``conv_preds`` as Linear. A
    1001-way output (index 0 = background) is cut to the 1,000 ILSVRC classes
    (:func:`without_background_class`)."""
    spec = json.loads((folder / "model.json").read_text())
    layers = spec["modelTopology"]["model_config"]["config"]["layers"]
    w = _read_tfjs_weights(folder, spec["weightsManifest"])
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    channels = layers[0]["config"]["batch_input_shape"][-1]
    classifier = None
    pooled = False
    for layer in layers[1:]:
        kind, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        if kind in ("Conv2D", "DepthwiseConv2D") and cfg["padding"] != "same":
            raise data.DataFileError(f"{folder}: layer {name} padding {cfg['padding']!r} unsupported")
        if kind == "GlobalAveragePooling2D":
            pooled = True
        elif kind == "DepthwiseConv2D" and pooled:
            raise data.DataFileError(
                f"{folder}/model.json: a depthwise layer ({name}) after global pooling "
                "is not supported; the classifier must be a 1x1 Conv2D"
            )
        elif kind == "Conv2D" and pooled:
            kernel = w[f"{name}/kernel"]  # (1, 1, in, out)
            classifier = nn.Linear(kernel.shape[2], kernel.shape[3], bias=cfg["use_bias"])
            classifier.weight.data = _tensor(kernel[0, 0].T)
            if cfg["use_bias"]:
                classifier.bias.data = _tensor(w[f"{name}/bias"])
        elif kind == "Conv2D":
            kernel = w[f"{name}/kernel"]  # (kh, kw, in, out)
            conv = Conv2dSame(
                channels, cfg["filters"], cfg["kernel_size"], cfg["strides"], bias=cfg["use_bias"]
            )
            conv.weight.data = _tensor(kernel.transpose(3, 2, 0, 1))
            if cfg["use_bias"]:
                conv.bias.data = _tensor(w[f"{name}/bias"])
            modules[name] = conv
            channels = cfg["filters"]
        elif kind == "DepthwiseConv2D":
            kernel = w[f"{name}/depthwise_kernel"]  # (kh, kw, in, multiplier)
            out = channels * cfg["depth_multiplier"]
            conv = Conv2dSame(
                channels, out, cfg["kernel_size"], cfg["strides"], groups=channels, bias=cfg["use_bias"]
            )
            conv.weight.data = _tensor(kernel.transpose(2, 3, 0, 1).reshape(out, 1, *kernel.shape[:2]))
            if cfg["use_bias"]:
                conv.bias.data = _tensor(w[f"{name}/depthwise_bias"])
            modules[name] = conv
            channels = out
        elif kind == "BatchNormalization":
            bn = nn.BatchNorm2d(channels, eps=cfg["epsilon"])
            bn.weight.data = _tensor(w[f"{name}/gamma"])
            bn.bias.data = _tensor(w[f"{name}/beta"])
            bn.running_mean.data = _tensor(w[f"{name}/moving_mean"])
            bn.running_var.data = _tensor(w[f"{name}/moving_variance"])
            modules[name] = bn
        elif kind == "Activation" and cfg["activation"] == "relu6":
            modules[name] = nn.ReLU6()
        elif kind == "Activation" and cfg["activation"] == "relu":
            modules[name] = nn.ReLU()
        elif kind in ("Reshape", "Dropout") or (kind == "Activation" and cfg["activation"] == "softmax"):
            continue  # reshape/dropout are identities at inference; logits are kept (no softmax)
        else:
            raise data.DataFileError(f"{folder}/model.json: layer {name} of type {kind} is not supported")
    if classifier is None:
        raise data.DataFileError(f"{folder}/model.json: no classifier layer after global pooling")
    if classifier.out_features == 1001:
        classifier = without_background_class(classifier)
    return TFJSClassifierNet(nn.Sequential(modules), classifier)


def build_mobilenet_v1_075(weights_path: str | None = None) -> nn.Module:
    folder = Path(weights_path) if weights_path else data.fetch_group("weights/mobilenet_v1_0.75_224")
    return build_tfjs_classifier(folder)


# --------------------------------------------------------------------------------------------
# Full-profile models (weights downloaded on a user's machine)
# --------------------------------------------------------------------------------------------

_DENSENET_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _load_weights_file(path: str | Path) -> dict:
    state = data.read_weights_file(path)
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def torchvision_state_dict(name: str, weights_enum, weights_path: str | None) -> dict:
    """ImageNet weights for a torchvision model: from ``weights_path`` if given, else from
    torchvision's download cache (``$TORCH_HOME/hub/checkpoints``), downloading on first use."""
    if weights_path:
        state = _load_weights_file(weights_path)
    else:
        filename = Path(urlparse(weights_enum.url).path).name
        cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
        try:
            state = weights_enum.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            raise WeightsUnavailableError(
                f"{name}: ImageNet weights are not cached and cannot be downloaded ({err}). "
                f"Put the file {filename} (from {weights_enum.url}) at {cached}, "
                f"or pass weights_path= a local copy."
            ) from err
    if name == "densenet121":
        state = {(_DENSENET_LEGACY_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    return state


def _load_checked(model: nn.Module, state: dict, name: str) -> nn.Module:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = str(err) if len(str(err)) < 600 else str(err)[:600] + " ..."
        raise WeightsUnavailableError(f"{name}: weights do not fit the architecture: {detail}") from err
    return model


def _torchvision_builder(name: str):
    from torchvision import models as tvm

    table = {
        "vgg16": (tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1, {}),
        "alexnet": (tvm.alexnet, tvm.AlexNet_Weights.IMAGENET1K_V1, {}),
        "googlenet": (
            tvm.googlenet,
            tvm.GoogLeNet_Weights.IMAGENET1K_V1,
            {"aux_logits": True, "transform_input": True, "init_weights": False},
        ),
        "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1, {}),
        "densenet121": (tvm.densenet121, tvm.DenseNet121_Weights.IMAGENET1K_V1, {}),
    }
    constructor, weights_enum, kwargs = table[name]

    def build(weights_path: str | None = None) -> nn.Module:
        state = torchvision_state_dict(name, weights_enum, weights_path)
        model = _load_checked(constructor(weights=None, **kwargs), state, name)
        if name == "googlenet":  # as torchvision does for pretrained GoogLeNet without aux heads
            model.aux_logits, model.aux1, model.aux2 = False, None, None
        return model

    return build


CHEXNET_WEIGHTS = "densenet121-res224-nih"


def chexnet_weights_file(cache_dir: str | Path | None = None) -> Path:
    """Where torchxrayvision keeps the CheXNet-style DenseNet-121 (NIH) weights."""
    import torchxrayvision as xrv

    url = xrv.models.model_urls[CHEXNET_WEIGHTS]["weights_url"]
    folder = Path(os.path.expanduser(str(cache_dir or xrv.utils.get_cache_dir())))
    return folder / os.path.basename(url)


def build_chexnet(weights_path: str | None = None) -> nn.Module:
    """torchxrayvision's DenseNet-121 trained on NIH ChestX-ray14 ("densenet121-res224-nih"),
    returning logits (its operating-point normalisation is switched off)."""
    import torchxrayvision as xrv

    info = xrv.models.model_urls[CHEXNET_WEIGHTS]
    path = Path(weights_path) if weights_path else chexnet_weights_file()
    if not path.is_file():
        if weights_path:
            raise WeightsUnavailableError(f"chexnet: weights file {path} does not exist")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            xrv.utils.download(info["weights_url"], str(path))
        except Exception as err:  # requests, urllib and OS errors alike
            raise WeightsUnavailableError(
                f"chexnet: torchxrayvision weights are not cached and cannot be downloaded ({err}). "
                f"Put the file {path.name} (from {info['weights_url']}) at {path}, "
                f"or pass weights_path= a local copy."
            ) from err
    saved = data.read_weights_file(path, "chexnet weights file", weights_only=False)  # a pickled module
    state = saved.state_dict() if isinstance(saved, nn.Module) else saved
    model = xrv.models.DenseNet(weights=None, num_classes=len(info["labels"]))
    model = _load_checked(model, state, "chexnet")
    model.op_threshs = None
    model.apply_sigmoid = False
    return model


def chexnet_class_names() -> list[str]:
    import torchxrayvision as xrv

    return list(xrv.models.model_urls[CHEXNET_WEIGHTS]["labels"])


# --------------------------------------------------------------------------------------------
# Stand-ins trained here (Tasks 5 and 7): architectures and checkpoints in gradcam_core.standins
# --------------------------------------------------------------------------------------------


def scores_avgpool(z: torch.Tensor) -> torch.Tensor:
    """Class score = global average of a 1x1-conv class map (no ReLU, so multi-label logits
    can be negative)."""
    return z.mean(dim=(-2, -1))


def no_normalization(x: torch.Tensor) -> torch.Tensor:
    """For networks that standardise their [0, 1] input themselves
    (:class:`gradcam_core.standins.Standardize`)."""
    return x


def imagenet_squeezenet_features() -> dict[str, torch.Tensor]:
    """The embedded ImageNet SqueezeNet 1.1's ``features`` weights (keys without the
    ``features.`` prefix): where the X-ray stand-in's fine-tuning starts."""
    state = squeezenet_state_dict(data.fetch_group("weights/squeezenet1_1") / "weights")
    return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}


def _checkpoint_builder(name: str):
    """Build the stand-in ``name`` from a checkpoint: ``weights_path``, or the cached checkpoint
    of its default configuration (:func:`gradcam_core.training.load_standin` trains it first)."""

    def build(weights_path: str | None = None) -> nn.Module:
        if weights_path:
            path = Path(weights_path)
        else:
            path = standins.checkpoint_path(standins.default_config(name))
            if not path.is_file():
                raise WeightsUnavailableError(
                    f"{name}: no trained checkpoint at {path}; train it first with "
                    f"gradcam_core.training.load_standin({name!r}), or pass weights_path="
                )
        return _load_checked(standins.architecture(name), standins.read_checkpoint(path)["state_dict"], name)

    return build


def _digits() -> list[str]:
    return [str(d) for d in range(10)]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Everything the report needs to know about one model. The defaults are an ImageNet
    classifier taking 224 px RGB with torchvision's normalisation, its logits the class scores.
    Every model sees the whole frame resized to ``input_size`` (:func:`to_pixels`, no crop, so
    boxes scale per axis); ``grayscale`` for one-channel inputs."""

    name: str
    description: str
    build: Callable[[str | None], nn.Module]
    target_layer: str  # the Grad-CAM layer: the last convolutional feature map (paper Sec. 3)
    classifier: str  # the last layer, mapping features to class scores
    class_scores: Callable[[torch.Tensor], torch.Tensor] = scores_identity  # after the classifier
    normalize: Callable[[torch.Tensor], torch.Tensor] = normalize_imagenet  # [0, 1] pixels -> input
    class_names: Callable[[], list[str]] = data.imagenet_class_names
    embedded: bool = False  # weights in the embedded data (else downloaded, or trained here)
    cam_compatible: bool = False  # target layer -> global average pooling -> classifier only
    input_size: int = 224
    grayscale: bool = False  # one input channel

    @cached_property
    def pixels(self) -> Callable[[Image.Image], torch.Tensor]:
        """PIL image -> [0, 1] tensor at the input size."""
        return to_pixels(self.input_size, self.grayscale)

    @property
    def transform(self) -> Preprocess:
        """PIL image -> network input tensor."""
        return Preprocess(self.pixels, self.normalize)


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    REGISTRY[spec.name] = spec
    return spec


def _torchvision_spec(
    name: str, layer: str, classifier: str, description: str, cam_compatible: bool
) -> ModelSpec:
    description = f"{description}, torchvision ImageNet weights (downloaded on first use)"
    return ModelSpec(
        name, description, _torchvision_builder(name), layer, classifier, cam_compatible=cam_compatible
    )


_STANDIN = "STAND-IN: embedded ImageNet SqueezeNet 1.1 fine-tuned here"
for _spec in (
    ModelSpec(
        "squeezenet1_1",
        "SqueezeNet 1.1, ImageNet (ONNX-zoo weights, embedded)",
        build_squeezenet1_1,
        "features.12",
        "classifier.1",
        scores_relu_avgpool,
        embedded=True,
        cam_compatible=True,
    ),
    ModelSpec(
        "squeezenet1_1-pruned",
        f"SqueezeNet 1.1 with {PRUNED_FRACTION:.1%} of each layer's smallest weights set to 0 (magnitude "
        "pruning of the embedded weights, no training): the trust study's less accurate model",
        build_squeezenet1_1_pruned,
        "features.12",
        "classifier.1",
        scores_relu_avgpool,
        embedded=True,
        cam_compatible=True,
    ),
    ModelSpec(
        "mobilenet_v1_0.75",
        "MobileNet v1 0.75 224, ImageNet (Google's TF.js weights, embedded)",
        build_mobilenet_v1_075,
        "features.conv_pw_13_relu",
        "classifier",
        normalize=normalize_symmetric,
        embedded=True,
        cam_compatible=True,
    ),
    _torchvision_spec("vgg16", "features.29", "classifier.6", "VGG-16", False),
    _torchvision_spec("alexnet", "features.11", "classifier.6", "AlexNet", False),
    _torchvision_spec("googlenet", "inception5b", "fc", "GoogLeNet (Inception v1)", True),
    _torchvision_spec("resnet50", "layer4", "fc", "ResNet-50", True),
    _torchvision_spec("densenet121", "features.norm5", "classifier", "DenseNet-121", False),
    ModelSpec(
        "chexnet",
        "DenseNet-121 on NIH ChestX-ray14, torchxrayvision 'densenet121-res224-nih'",
        build_chexnet,
        "features.norm5",
        "classifier",
        normalize=normalize_xray,
        class_names=chexnet_class_names,
        grayscale=True,
    ),
    # Stand-ins trained here, reproducibly (checkpoints cached by configuration hash): no weights
    # for these tasks' real models can be downloaded where the report is built.
    ModelSpec(
        "squeezenet1_1-cxr",
        f"{_STANDIN}, multi-label over the 14 NIH findings, on the 609 embedded X-rays without boxes",
        _checkpoint_builder("squeezenet1_1-cxr"),
        "features.12",
        "classifier.1",
        scores_avgpool,
        class_names=lambda: list(data.NIH_FINDINGS),
        embedded=True,
        cam_compatible=True,
    ),
    *(
        ModelSpec(
            name,
            description,
            _checkpoint_builder(name),
            "features.11",
            "classifier",
            normalize=no_normalization,
            class_names=_digits,
            embedded=True,
            cam_compatible=True,
            input_size=28,
            grayscale=True,
        )
        for name, description in (
            (
                "mnist-cnn",
                "STAND-IN: small CNN trained here on 8,000 of the 10,000 embedded MNIST test digits",
            ),
            (
                "mnist-cnn-permuted-labels",
                "STAND-IN: mnist-cnn's network and training on randomly permuted training labels "
                "(Adebayo et al. 2018's data randomisation test)",
            ),
        )
    ),
    ModelSpec(
        "cifar10-cnn",
        "STAND-IN: small CNN trained here on the 20,000 embedded CIFAR-10 training images",
        _checkpoint_builder("cifar10-cnn"),
        "features.20",
        "classifier",
        normalize=no_normalization,
        class_names=lambda: list(data.CIFAR10_CLASSES),
        embedded=True,
        cam_compatible=True,
        input_size=32,
    ),
):
    register(_spec)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}"
        ) from None


@dataclass
class LoadedModel:
    """A model ready to explain: eval mode, parameters frozen, on ``device``."""

    spec: ModelSpec
    module: nn.Module
    class_names: list[str]
    device: torch.device

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def layer(self, name: str | None = None) -> nn.Module:
        """The module called ``name`` (default: the spec's target layer)."""
        return get_layer(self.module, name or self.spec.target_layer)

    @property
    def classifier(self) -> nn.Module:
        return get_layer(self.module, self.spec.classifier)

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        """A batch of [0, 1] pixels at the input size on the model's device (attacks work here)."""
        return torch.stack([self.spec.pixels(image) for image in images]).to(self.device)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> network input (channels-last)."""
        return to_model_input(self.spec.normalize(pixels), self.device)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """A batch tensor on the model's device (channels-last) from PIL images."""
        return to_model_input(torch.stack([self.spec.transform(image) for image in images]), self.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def to_model_input(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device`` in the channels-last memory format the registry's models use."""
    return batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def get_layer(module: nn.Module, name: str) -> nn.Module:
    layers = dict(module.named_modules())
    if name not in layers or name == "":
        names = [n for n in layers if n]
        raise UnknownLayerError(f"unknown layer {name!r}; the model's layers are: {', '.join(names)}")
    return layers[name]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU. A device this machine does not have
    (``cuda`` without a GPU, ``cuda:7`` with one GPU, ``mps`` off a Mac) or a name that is not a
    device raises :class:`DeviceError` naming it and what the machine has."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(
            f"device {device!r} is not a torch device name (cpu, cuda, cuda:N or auto)"
        ) from err
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"device {str(device)!r}: this machine has no CUDA GPU (use cpu or auto)")
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(
                f"device {str(device)!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r}: MPS is not available on this machine")
    return resolved


def prepare(module: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, parameters frozen (explainers take gradients of activations and inputs only),
    channels-last memory format (about twice as fast for these convolutional networks on the
    CPU; same numbers up to float rounding)."""
    module.eval().to(device, memory_format=torch.channels_last)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def load_model(
    name: str, weights_path: str | None = None, device: str | torch.device = "auto"
) -> LoadedModel:
    """Build ``name`` from the registry with its weights, ready for explanation."""
    spec = get_spec(name)
    device = resolve_device(device)
    module = prepare(spec.build(weights_path), device)
    return LoadedModel(spec, module, spec.class_names(), device)
