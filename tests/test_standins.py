"""Stand-ins (:mod:`gradcam_core.standins`): configurations and their digests, where checkpoints
live and how they are read, the architectures, and their registry entries."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch

from gradcam_core import data, maps, methods, models, standins
from tests.helpers import random_standin

TINY = standins.TrainingConfig("mnist-cnn", "mnist", epochs=1, batch_size=64, learning_rate=3e-3, n_train=600)


# ------------------------------------------------------------------------------ configurations


def test_digest_is_sha256_of_config_code_version_and_torch():
    config = dataclasses.asdict(TINY)
    del config["permute_labels"]  # added later: in the digest only when set (see below)
    text = json.dumps(
        {"config": config, "code": standins.TRAINING_CODE_VERSION, "torch": torch.__version__}, sort_keys=True
    )
    assert TINY.digest() == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert TINY.digest() == dataclasses.replace(TINY).digest()
    assert dataclasses.replace(TINY, seed=1).digest() != TINY.digest()
    assert dataclasses.replace(TINY, threads=4).digest() != TINY.digest()


def test_digest_changes_with_the_training_code_version(monkeypatch):
    before = TINY.digest()
    monkeypatch.setattr(standins, "TRAINING_CODE_VERSION", standins.TRAINING_CODE_VERSION + 1)
    assert TINY.digest() != before


def test_default_configs_name_their_stand_ins():
    assert set(standins.DEFAULT_CONFIGS) == {
        "mnist-cnn",
        "mnist-cnn-permuted-labels",
        "cifar10-cnn",
        "squeezenet1_1-cxr",
    }
    for name, config in standins.DEFAULT_CONFIGS.items():
        assert config.name == name and standins.default_config(name) is config
        assert models.get_spec(name).embedded
    assert standins.MNIST_TRAIN_DIGITS == 8000
    assert standins.default_config("mnist-cnn").n_train == standins.MNIST_TRAIN_DIGITS
    assert standins.default_config("squeezenet1_1-cxr").dataset == "nih_cxr"
    with pytest.raises(ValueError, match="'vgg16' is not a stand-in trained here; stand-ins: mnist-cnn"):
        standins.default_config("vgg16")


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoint_path_is_named_by_the_digest(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADCAM_DATA_DIR", str(tmp_path))
    assert standins.checkpoint_path(TINY) == tmp_path / "checkpoints" / f"mnist-cnn-{TINY.digest()}.pt"
    other = dataclasses.replace(TINY, learning_rate=1e-3)
    assert standins.checkpoint_path(other) != standins.checkpoint_path(TINY)
    assert not (tmp_path / "checkpoints").exists()  # a path only: nothing is created


def test_read_checkpoint_returns_the_saved_dict(tmp_path):
    saved = {"state_dict": {"w": torch.arange(3.0)}, "history": [{"epoch": 1}], "seconds": 2.5}
    torch.save(saved, tmp_path / "ok.pt")
    read = standins.read_checkpoint(tmp_path / "ok.pt")
    assert torch.equal(read["state_dict"]["w"], torch.arange(3.0)) and read["history"] == [{"epoch": 1}]


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(data.WeightsUnavailableError, match=r"checkpoint .*absent.pt does not exist"):
        standins.read_checkpoint(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(data.WeightsUnavailableError, match=r"cannot read checkpoint .*bad.pt"):
        standins.read_checkpoint(bad)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(data.WeightsUnavailableError, match=r"other.pt is not a checkpoint .*no state_dict"):
        standins.read_checkpoint(tmp_path / "other.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(data.WeightsUnavailableError, match="no state_dict"):
        standins.read_checkpoint(tmp_path / "list.pt")


# ------------------------------------------------------------------------------ architectures


@pytest.mark.parametrize(
    "name, shape, classes, kind",
    [
        ("mnist-cnn", (2, 1, 28, 28), 10, standins.SmallCNN),
        ("cifar10-cnn", (2, 3, 32, 32), 10, standins.SmallCNN),
        ("squeezenet1_1-cxr", (2, 3, 224, 224), len(data.NIH_FINDINGS), torch.nn.Module),
    ],
)
def test_architectures_take_their_inputs_and_give_their_classes(name, shape, classes, kind):
    torch.manual_seed(0)
    module = standins.architecture(name).eval()
    assert isinstance(module, kind)
    with torch.no_grad():
        assert module(torch.rand(shape)).shape == (shape[0], classes)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="no stand-in architecture 'vgg16'; known: mnist-cnn"):
        standins.architecture("vgg16")


@pytest.mark.parametrize("name", ["mnist-cnn", "cifar10-cnn"])
def test_small_cnn_target_layer_is_the_registrys(name):
    module = standins.architecture(name)
    assert module.target_layer == models.get_spec(name).target_layer
    assert isinstance(models.get_layer(module, module.target_layer), torch.nn.ReLU)


def test_standardize_by_hand():
    layer = standins.Standardize((0.5, 0.25), (2.0, 0.5))
    x = torch.tensor([[[[1.5]], [[0.75]]]])
    assert torch.allclose(layer(x), torch.tensor([[[[0.5]], [[1.0]]]]))  # (1.5-0.5)/2, (0.75-0.25)/0.5


def test_squeezenet_multilabel_has_a_fresh_head_without_relu():
    torch.manual_seed(0)
    module = standins.squeezenet_multilabel(3).eval()
    head = module.classifier[1]
    assert isinstance(head, torch.nn.Conv2d) and head.out_channels == 3 and head.kernel_size == (1, 1)
    assert not any(isinstance(m, torch.nn.ReLU) for m in module.classifier)
    with torch.no_grad():
        head.bias.fill_(-100.0)  # averaged logits may be negative: no final ReLU clips them
        assert (module(torch.rand(1, 3, 64, 64)) < 0).all()


@pytest.mark.parametrize(
    "name, shape",
    [("mnist-cnn", (2, 1, 28, 28)), ("cifar10-cnn", (2, 3, 32, 32)), ("squeezenet1_1-cxr", (2, 3, 224, 224))],
)
def test_standin_specs_give_cam_equal_grad_cam(name, shape, tmp_path):
    # random weights saved as a checkpoint: the registry's layers and scores fit the architecture
    model = random_standin(name, tmp_path)
    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    grad_cam = maps.normalize_maps(methods.GradCAM(model).attribute(x, [1, 2]))
    cam = maps.normalize_maps(methods.CAM(model).attribute(x, [1, 2]))
    assert torch.allclose(grad_cam, cam, atol=1e-4)  # GAP + linear classifier: Sec. 3.1


# ------------------------------------------------------------------------------ permuted labels

#: The digests of the configurations that existed before ``permute_labels`` was added, computed
#: before the change (torch 2.14.1+cu130): their cached checkpoints must keep their names.
DIGESTS_BEFORE_PERMUTE_LABELS = {
    "mnist-cnn": "c67c1442ec72",
    "cifar10-cnn": "ea8a8f92f77b",
    "squeezenet1_1-cxr": "87ee173d0757",
}


def _digest_without_the_new_field(config) -> str:
    """The digest as computed before ``permute_labels`` existed."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k != "permute_labels"}
    text = json.dumps(
        {"config": fields, "code": standins.TRAINING_CODE_VERSION, "torch": torch.__version__}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_existing_digests_are_unchanged_by_the_new_field():
    for name in DIGESTS_BEFORE_PERMUTE_LABELS:
        config = standins.default_config(name)
        assert not config.permute_labels
        assert config.digest() == _digest_without_the_new_field(config)
        if torch.__version__ == "2.14.1+cu130":  # the digest includes torch's version
            assert config.digest() == DIGESTS_BEFORE_PERMUTE_LABELS[name]
    assert TINY.digest() == _digest_without_the_new_field(TINY)
    assert set(standins.DIGEST_OMITTED_AT_DEFAULT) == {"permute_labels"}


def test_permuted_label_config_is_mnist_cnn_with_permuted_labels():
    mnist = standins.default_config("mnist-cnn")
    permuted = standins.default_config("mnist-cnn-permuted-labels")
    assert permuted == dataclasses.replace(mnist, name="mnist-cnn-permuted-labels", permute_labels=True)
    assert permuted.digest() != _digest_without_the_new_field(permuted)  # the set field enters the digest
    assert dataclasses.replace(TINY, permute_labels=True).digest() != TINY.digest()
    spec, reference = models.get_spec("mnist-cnn-permuted-labels"), models.get_spec("mnist-cnn")
    for attribute in ("target_layer", "classifier", "input_size", "grayscale", "cam_compatible", "embedded"):
        assert getattr(spec, attribute) == getattr(reference, attribute)
    assert spec.normalize is reference.normalize and spec.class_names() == reference.class_names()
    torch.manual_seed(0)
    network = standins.architecture("mnist-cnn-permuted-labels")
    torch.manual_seed(0)
    same = standins.architecture("mnist-cnn")
    assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), same.state_dict().values()))
