"""Model registry: embedded weights reproduce their references and accuracies; full-profile
loaders work from local files and fail clearly offline; registry entries are consistent."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from gradcam_core import data, models
from gradcam_core.methods import select_classifier_output


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
