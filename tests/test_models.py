"""Model registry: embedded weights reproduce their references and accuracies; full-profile
loaders work from local files and fail clearly offline; registry entries are consistent."""

from __future__ import annotations

import json
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from gradcam_core import data, methods, models, standins
from gradcam_core.methods import select_classifier_output
from tests.helpers import identity


@pytest.mark.parametrize("index", [0, 1, 2])
def test_squeezenet_reproduces_reference_outputs(squeezenet, index):
    folder = data.fetch_group("weights/squeezenet1_1") / f"test_data_set_{index}"
    with torch.no_grad():
        out = squeezenet(torch.from_numpy(np.load(folder / "input_0.npy")))
    np.testing.assert_allclose(out.numpy(), np.load(folder / "output_0.npy"), atol=1e-3, rtol=0)


def _accuracy(model, records, batch=100):
    top1 = top5 = 0
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        x = model.preprocess([data.load_rgb(r.path) for r in chunk])
        with torch.no_grad():
            top = model(x).topk(5, 1).indices
        labels = torch.tensor([r.label for r in chunk])
        top1 += int((top[:, 0] == labels).sum())
        top5 += int((top == labels[:, None]).any(1).sum())
    return 100 * top1 / len(records), 100 * top5 / len(records)


def test_squeezenet_top1_on_embedded_images(squeezenet, ilsvrc_records):
    top1, top5 = _accuracy(squeezenet, ilsvrc_records)
    print(f"squeezenet1_1: top-1 {top1:.2f} %, top-5 {top5:.2f} %")
    assert abs(top1 - 66.6) <= 0.5


def test_mobilenet_top1_on_embedded_images(mobilenet, ilsvrc_records):
    top1, top5 = _accuracy(mobilenet, ilsvrc_records)
    print(f"mobilenet_v1_0.75: top-1 {top1:.2f} %, top-5 {top5:.2f} %")
    assert abs(top1 - 76.8) <= 1.0


def test_mobilenet_tf_same_padding_is_asymmetric():
    conv = models.Conv2dSame(1, 1, 3, stride=2, bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TF "same", stride 2, 4 -> 2: pad 0 before, 1 after; windows start at rows/cols 0 and 2
    expected = torch.tensor(
        [
            [x[0, 0, 0:3, 0:3].sum(), x[0, 0, 0:3, 2:4].sum()],
            [x[0, 0, 2:4, 0:3].sum(), x[0, 0, 2:4, 2:4].sum()],
        ]
    )
    assert torch.equal(conv(x)[0, 0], expected)


def test_unknown_model_lists_known_models():
    with pytest.raises(models.UnknownModelError) as err:
        models.load_model("resnet1000")
    for name in ("squeezenet1_1", "mobilenet_v1_0.75", "vgg16", "chexnet"):
        assert name in str(err.value)


def test_unknown_layer_lists_layer_names(squeezenet):
    with pytest.raises(models.UnknownLayerError) as err:
        squeezenet.layer("features.99")
    assert "features.99" in str(err.value) and "features.12.expand3x3" in str(err.value)


def test_parameters_are_frozen_and_eval_mode(embedded_model):
    assert not any(p.requires_grad for p in embedded_model.module.parameters())
    assert not embedded_model.module.training


# ------------------------------------------------------------------------- full-profile models


def test_torchvision_model_offline_without_file_says_which_file_where(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load_model("vgg16", device="cpu")
    message = str(err.value)
    assert "vgg16-397923af.pth" in message and str(tmp_path / "checkpoints" / "vgg16-397923af.pth") in message
    assert "weights_path" in message


def test_googlenet_from_local_state_dict(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(
        weights=None, aux_logits=True, transform_input=True, init_weights=True
    )
    path = tmp_path / "googlenet.pth"
    torch.save(reference.state_dict(), path)
    loaded = models.load_model("googlenet", weights_path=str(path), device="cpu")
    assert loaded.module.aux1 is None and loaded.num_classes == 1000
    reference.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), atol=1e-5)


def test_densenet_legacy_checkpoint_keys_are_remapped(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.densenet121(weights=None).eval()
    legacy = {
        k.replace(".norm1.", ".norm.1.")
        .replace(".conv1.", ".conv.1.")
        .replace(".norm2.", ".norm.2.")
        .replace(".conv2.", ".conv.2."): v
        for k, v in reference.state_dict().items()
    }
    assert any(".norm.1." in k for k in legacy)
    torch.save(legacy, tmp_path / "densenet.pth")
    loaded = models.load_model("densenet121", weights_path=str(tmp_path / "densenet.pth"), device="cpu")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), atol=1e-5)


def test_state_dict_of_wrong_shape_is_a_clear_error(tmp_path):
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(models.WeightsUnavailableError, match="alexnet: weights do not fit"):
        models.load_model("alexnet", weights_path=str(tmp_path / "bad.pth"), device="cpu")
    with pytest.raises(models.WeightsUnavailableError, match="does not exist"):
        models.load_model("alexnet", weights_path=str(tmp_path / "absent.pth"), device="cpu")


def test_chexnet_from_locally_created_torchxrayvision_file(tmp_path):
    import torchxrayvision as xrv

    torch.manual_seed(0)
    reference = xrv.models.DenseNet(weights=None, num_classes=18).eval()
    path = tmp_path / models.chexnet_weights_file().name
    torch.save(reference, path)  # torchxrayvision ships whole pickled modules
    loaded = models.load_model("chexnet", weights_path=str(path), device="cpu")
    assert loaded.class_names[:3] == ["Atelectasis", "Consolidation", "Infiltration"]
    x = torch.randn(2, 1, 224, 224) * 500
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), atol=1e-4)  # raw logits


def test_chexnet_offline_without_file_says_which_file_where(monkeypatch, tmp_path):
    import torchxrayvision as xrv

    monkeypatch.setattr(xrv.utils, "get_cache_dir", lambda: str(tmp_path))

    def offline(url, filename):
        raise ConnectionError("no network")

    monkeypatch.setattr(xrv.utils, "download", offline)
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load_model("chexnet", device="cpu")
    expected = tmp_path / "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
    assert str(expected) in str(err.value) and not expected.exists()


# ------------------------------------------------------------------------- registry consistency


def _random_architecture(name: str) -> torch.nn.Module:
    import torchxrayvision as xrv

    tv = torchvision.models
    torch.manual_seed(0)
    return {
        "vgg16": lambda: tv.vgg16(weights=None),
        "alexnet": lambda: tv.alexnet(weights=None),
        "googlenet": lambda: tv.googlenet(weights=None, aux_logits=False, init_weights=True),
        "resnet50": lambda: tv.resnet50(weights=None),
        "densenet121": lambda: tv.densenet121(weights=None),
        "chexnet": lambda: xrv.models.DenseNet(weights=None, num_classes=18),
    }[name]()


@pytest.mark.parametrize("name", ["vgg16", "alexnet", "googlenet", "resnet50", "densenet121", "chexnet"])
def test_registry_classifier_and_scores_match_full_logits(name):
    spec = models.get_spec(name)
    module = models.prepare(_random_architecture(name), torch.device("cpu"))
    if name == "chexnet":
        module.op_threshs = None
    loaded = models.LoadedModel(spec, module, spec.class_names(), torch.device("cpu"))
    captured = {}
    hook = loaded.classifier.register_forward_pre_hook(lambda m, a: captured.setdefault("x", a[0]))
    x = torch.randn(2, 1 if name == "chexnet" else 3, 224, 224)
    with torch.no_grad():
        logits = loaded(x)
    hook.remove()
    classes = torch.tensor([[0, 5, 17], [3, 2, 1]])
    scores = spec.class_scores(select_classifier_output(loaded.classifier, captured["x"], classes))
    assert torch.allclose(scores, logits.gather(1, classes), atol=1e-4)
    assert loaded.layer() is not None and len(loaded.class_names) == logits.shape[1]


def test_embedded_registry_classifier_scores_match(embedded_model, ilsvrc_records):
    captured = {}
    hook = embedded_model.classifier.register_forward_pre_hook(lambda m, a: captured.setdefault("x", a[0]))
    x = embedded_model.preprocess([data.load_rgb(ilsvrc_records[0].path)])
    with torch.no_grad():
        logits = embedded_model(x)
    hook.remove()
    classes = logits.topk(5, 1).indices
    scores = embedded_model.spec.class_scores(
        select_classifier_output(embedded_model.classifier, captured["x"], classes)
    )
    assert torch.allclose(scores, logits.gather(1, classes), atol=1e-4)


# ------------------------------------------------------------------------- registry entries


def test_model_spec_defaults_and_cached_pixels():
    spec = models.ModelSpec("x", "a model", lambda w: torch.nn.Identity(), "layer", "fc")
    assert spec.class_scores is models.scores_identity and spec.normalize is models.normalize_imagenet
    assert spec.class_names is data.imagenet_class_names and not spec.embedded and not spec.cam_compatible
    assert (spec.input_size, spec.grayscale) == (224, False)
    assert spec.pixels is spec.pixels  # built once
    assert spec.pixels(Image.new("RGB", (50, 30), (255, 0, 0))).shape == (3, 224, 224)
    mnist = models.get_spec("mnist-cnn")
    pixels = mnist.pixels(Image.new("RGB", (50, 30), (255, 255, 255)))
    assert pixels.shape == (1, 28, 28) and torch.allclose(pixels, torch.ones(1, 28, 28))
    assert mnist.transform(Image.new("RGB", (5, 5))).shape == (1, 28, 28)
    assert models.get_spec("cifar10-cnn").pixels(Image.new("RGB", (5, 5))).shape == (3, 32, 32)


def test_weights_unavailable_error_is_the_data_layers():
    assert models.WeightsUnavailableError is data.WeightsUnavailableError


def test_standin_without_a_checkpoint_says_how_to_train_it(monkeypatch, tmp_path):
    missing = tmp_path / "checkpoints" / "mnist-cnn-none.pt"
    monkeypatch.setattr(standins, "checkpoint_path", lambda config: missing)
    with pytest.raises(data.WeightsUnavailableError) as err:
        models.load_model("mnist-cnn", device="cpu")
    message = str(err.value)
    assert f"no trained checkpoint at {missing}" in message
    assert "gradcam_core.training.load_standin('mnist-cnn')" in message and "weights_path=" in message


def test_without_background_class_drops_row_zero_and_copies():
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 5)
    trimmed = models.without_background_class(linear)
    assert (trimmed.in_features, trimmed.out_features) == (3, 4)
    assert torch.equal(trimmed.weight, linear.weight[1:]) and torch.equal(trimmed.bias, linear.bias[1:])
    x = torch.randn(2, 3)
    with torch.no_grad():
        assert torch.allclose(trimmed(x), linear(x)[:, 1:])
        trimmed.weight.zero_()
    assert linear.weight.abs().sum() > 0  # a copy, not a view of the original rows


# ------------------------------------------------------------------------- a synthetic TF.js model

TFJS_CHANNELS, TFJS_SIZE, TFJS_EPSILON = 4, 8, 1e-3


def _tfjs_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = TFJS_CHANNELS
    return {
        "conv1/kernel": rng.normal(0, 0.5, (3, 3, 3, c)).astype(np.float32),  # (kh, kw, in, out)
        "conv1_bn/gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "conv1_bn/beta": rng.normal(0, 0.3, c).astype(np.float32),
        "conv1_bn/moving_mean": rng.normal(0, 0.2, c).astype(np.float32),
        "conv1_bn/moving_variance": rng.uniform(0.5, 2.0, c).astype(np.float32),
        "conv_preds/kernel": rng.normal(0, 1.0, (1, 1, c, 1001)).astype(np.float32),
        "conv_preds/bias": rng.normal(0, 0.1, 1001).astype(np.float32),
    }


def _write_tfjs_model(folder, weights: dict[str, np.ndarray]):
    """model.json and two float32 shards (split mid-weight) in the TF.js layers format."""
    folder.mkdir()

    def layer(kind, name, **config):
        return {"class_name": kind, "config": {"name": name, **config}}

    conv = {"strides": [1, 1], "padding": "same"}
    layers = [
        layer("InputLayer", "input_1", batch_input_shape=[None, TFJS_SIZE, TFJS_SIZE, 3]),
        layer("Conv2D", "conv1", filters=TFJS_CHANNELS, kernel_size=[3, 3], use_bias=False, **conv),
        layer("BatchNormalization", "conv1_bn", epsilon=TFJS_EPSILON),
        layer("Activation", "conv1_relu", activation="relu"),
        layer("GlobalAveragePooling2D", "global_average_pooling2d_1"),
        layer("Reshape", "reshape_1", target_shape=[1, 1, TFJS_CHANNELS]),
        layer("Conv2D", "conv_preds", filters=1001, kernel_size=[1, 1], use_bias=True, **conv),
        layer("Activation", "act_softmax", activation="softmax"),
        layer("Reshape", "reshape_2", target_shape=[1001]),
    ]
    raw = b"".join(w.astype("<f4").tobytes() for w in weights.values())
    half = len(raw) // 2 + 2  # not on a weight boundary: the shards are one byte stream
    (folder / "group1-shard1of2.bin").write_bytes(raw[:half])
    (folder / "group1-shard2of2.bin").write_bytes(raw[half:])
    manifest = [
        {
            "paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
            "weights": [{"name": n, "shape": list(w.shape), "dtype": "float32"} for n, w in weights.items()],
        }
    ]
    topology = {"model_config": {"class_name": "Model", "config": {"layers": layers}}}
    (folder / "model.json").write_text(json.dumps({"modelTopology": topology, "weightsManifest": manifest}))
    return folder


def _numpy_forward(weights: dict[str, np.ndarray], x_nhwc: np.ndarray):
    """The TF.js network by hand in float64: 3x3 'same' convolution (stride 1: one pixel of
    zeros all round), batch norm, ReLU -> activations A; global average pool, 1001-way 1x1
    convolution -> logits. Returns (A as (N, C, H, W), the 1001 logits)."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    n, h, wid, _ = x_nhwc.shape
    padded = np.pad(x_nhwc.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((n, h, wid, TFJS_CHANNELS))
    for i in range(3):
        for j in range(3):
            conv += padded[:, i : i + h, j : j + wid, :] @ w["conv1/kernel"][i, j]
    scale = w["conv1_bn/gamma"] / np.sqrt(w["conv1_bn/moving_variance"] + TFJS_EPSILON)
    activations = np.maximum((conv - w["conv1_bn/moving_mean"]) * scale + w["conv1_bn/beta"], 0)
    logits = activations.mean(axis=(1, 2)) @ w["conv_preds/kernel"][0, 0] + w["conv_preds/bias"]
    return activations.transpose(0, 3, 1, 2), logits


@pytest.fixture(scope="module")
def tfjs_model(tmp_path_factory):
    weights = _tfjs_weights()
    folder = _write_tfjs_model(tmp_path_factory.mktemp("tfjs") / "model", weights)
    module = models.build_tfjs_classifier(folder)
    names = [f"class {i}" for i in range(1000)]
    spec = models.ModelSpec(
        "tfjs-tiny",
        "synthetic 1001-way TF.js classifier",
        lambda weights_path: module,
        "features.conv1_relu",
        "classifier",
        normalize=identity,
        class_names=lambda: names,
        cam_compatible=True,
        input_size=TFJS_SIZE,
    )
    loaded = models.LoadedModel(spec, models.prepare(module, torch.device("cpu")), names, torch.device("cpu"))
    x = torch.from_numpy(
        np.random.default_rng(1).normal(0, 1, (3, 3, TFJS_SIZE, TFJS_SIZE)).astype(np.float32)
    )
    activations, logits_1001 = _numpy_forward(weights, x.numpy().transpose(0, 2, 3, 1))
    return loaded, weights, x, activations, logits_1001


def test_tfjs_classifier_is_built_with_1000_outputs(tfjs_model):
    loaded, weights, *_ = tfjs_model
    assert isinstance(loaded.module, models.TFJSClassifierNet)
    assert list(dict(loaded.module.features.named_children())) == ["conv1", "conv1_bn", "conv1_relu"]
    assert loaded.classifier.out_features == 1000 and loaded.num_classes == 1000
    kernel = weights["conv_preds/kernel"][0, 0]  # (in, 1001)
    np.testing.assert_array_equal(loaded.classifier.weight.numpy(), kernel[:, 1:].T)  # row c == TF row c+1
    np.testing.assert_array_equal(loaded.classifier.bias.numpy(), weights["conv_preds/bias"][1:])
    bn = loaded.module.features.conv1_bn
    assert bn.eps == TFJS_EPSILON and not loaded.module.training


def test_tfjs_logits_are_the_1001_way_logits_without_background(tfjs_model):
    loaded, _, x, _, logits_1001 = tfjs_model
    with torch.no_grad():
        logits = loaded(x)
    assert logits.shape == (3, 1000)
    np.testing.assert_allclose(logits.numpy(), logits_1001[:, 1:], rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits.numpy(), logits_1001[:, :-1], atol=1e-3)  # not off by one


def test_tfjs_cam_uses_row_c_plus_1_of_the_original_classifier(tfjs_model):
    loaded, weights, x, activations, _ = tfjs_model
    kernel = weights["conv_preds/kernel"][0, 0].astype(np.float64)  # (in, 1001): TF row r is kernel[:, r]
    classes = torch.tensor([[0, 5], [999, 17], [3, 3]])
    cam = methods.CAM(loaded).attribute(x, classes).numpy()
    assert cam.shape == (3, 2, TFJS_SIZE, TFJS_SIZE)  # the layer is at input size: no resize
    for i in range(3):
        for k, c in enumerate(classes[i].tolist()):
            by_hand = np.maximum(np.einsum("k,khw->hw", kernel[:, c + 1], activations[i]), 0)
            np.testing.assert_allclose(cam[i, k], by_hand, rtol=1e-4, atol=1e-5)
            shifted = np.maximum(np.einsum("k,khw->hw", kernel[:, c], activations[i]), 0)
            assert not np.allclose(cam[i, k], shifted, atol=1e-3)
    # Grad-CAM on GAP -> linear: CAM's weights divided by the map size (paper Sec. 3.1)
    gradcam = methods.GradCAM(loaded).attribute(x, classes).numpy()
    np.testing.assert_allclose(gradcam, cam / TFJS_SIZE**2, rtol=1e-4, atol=1e-7)


def test_tfjs_class_sliced_gradcam_equals_the_full_logits_fallback(tfjs_model):
    loaded, _, x, _, _ = tfjs_model
    classes = torch.tensor([[0, 999, 1], [42, 7, 500], [1, 2, 3]])
    sliced = methods.GradCAM(loaded)  # registry path: scores through the classifier's rows only
    assert sliced.classifier is loaded.classifier
    fallback = methods.GradCAM(loaded.module, layer="features.conv1_relu", num_classes=1000)
    assert fallback.classifier is None and fallback.spec is None
    ours, reference = sliced.attribute(x, classes), fallback.attribute(x, classes)
    assert float(reference.abs().max()) > 0
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_tfjs_shards_that_do_not_fit_the_manifest_are_named(tmp_path):
    folder = _write_tfjs_model(tmp_path / "model", _tfjs_weights())
    shard = folder / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes() + b"\0\0\0\0")
    with pytest.raises(data.DataFileError, match=r"hold \d+ bytes, manifest needs \d+"):
        models.build_tfjs_classifier(folder)


def test_resolve_device_names_a_device_this_machine_lacks(monkeypatch):
    assert models.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(models.DeviceError, match="'gpu' is not a torch device name"):
        models.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(models.DeviceError, match="'cuda': this machine has no CUDA GPU"):
        models.resolve_device("cuda")
    assert models.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert models.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(models.DeviceError, match=r"this machine has 1 CUDA GPU\(s\), cuda:0..cuda:0"):
        models.resolve_device("cuda:7")


def test_magnitude_pruning_zeroes_the_smallest_weights_per_layer():
    layer = torch.nn.Conv2d(1, 1, 2, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[[0.1, -0.4], [0.3, -0.2]]]]))
        layer.bias.fill_(0.05)
    module = torch.nn.Sequential(layer, torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(1, 2))
    with torch.no_grad():
        module[3].weight.copy_(torch.tensor([[1.0], [-3.0]]))
    models.prune_smallest_weights(module, 0.5)
    assert layer.weight.flatten().tolist() == pytest.approx([0.0, -0.4, 0.3, 0.0])
    assert layer.bias.item() == pytest.approx(0.05)
    assert module[3].weight.flatten().tolist() == [0.0, -3.0]
    models.prune_smallest_weights(module, 0.0)
    assert layer.weight.flatten().tolist() == pytest.approx([0.0, -0.4, 0.3, 0.0])
    with pytest.raises(ValueError, match="fraction must be in"):
        models.prune_smallest_weights(module, 1.0)


def test_the_pruned_squeezenet_is_the_embedded_one_with_its_fraction_zeroed():
    trained = models.load_model("squeezenet1_1", device="cpu").module
    pruned = models.load_model("squeezenet1_1-pruned", device="cpu").module
    for (name, a), (_, b) in zip(trained.named_parameters(), pruned.named_parameters()):
        if name.endswith("weight"):
            zeroed = (b == 0) & (a != 0)
            assert zeroed.float().mean().item() == pytest.approx(models.PRUNED_FRACTION, abs=0.01), name
            assert torch.equal(b[b != 0], a[b != 0])
        else:
            assert torch.equal(a, b)
