"""Grad-CAM's successors in the CAM template (HiResCAM, XGrad-CAM, LayerCAM, Score-CAM) against
pytorch-grad-cam on the embedded models and images, and against closed forms and direct
computations where pytorch-grad-cam deviates from the papers' equations."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcam_core import methods, models
from gradcam_core.maps import normalize_maps, upsample
from tests.helpers import image_batch

SUCCESSORS = {
    "hirescam": "HiResCAM",
    "xgrad-cam": "XGradCAM",
    "layer-cam": "LayerCAM",
    "score-cam": "ScoreCAM",
}


def _trainable(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for p in module.parameters():
        p.requires_grad_(True)  # pytorch-grad-cam needs a graph through the parameters
    return module


def _oracle(name: str, module: nn.Module, layer: str):
    import pytorch_grad_cam

    module = _trainable(module)
    return pytorch_grad_cam.__dict__[name](module, [models.get_layer(module, layer)])


def _targets(classes: torch.Tensor) -> list:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return [ClassifierOutputTarget(int(c)) for c in classes]


# ------------------------------------------------------------------------------ registry


def test_successors_are_registered_and_created_by_name(squeezenet):
    for name, cls in SUCCESSORS.items():
        assert methods.METHODS[name] is getattr(methods, cls)
        assert cls in methods.__all__ and issubclass(methods.METHODS[name], methods.ClassActivationMapping)
    explainer = methods.create("score-cam", squeezenet, batch_size=17, variant="pytorch-grad-cam")
    assert isinstance(explainer, methods.ScoreCAM)
    assert (explainer.batch_size, explainer.variant, explainer.skip_constant_channels) == (
        17,
        "pytorch-grad-cam",
        True,
    )
    assert set(methods.settings_of(methods.ScoreCAM)) == {
        "layer",
        "batch_size",
        "variant",
        "skip_constant_channels",
        "progress",
        "num_classes",
    }
    assert isinstance(methods.create("hirescam", squeezenet), methods.HiResCAM)
    with pytest.raises(ValueError, match="variant must be one of"):
        methods.create("score-cam", squeezenet, variant="softmax")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        methods.create("score-cam", squeezenet, batch_size=0)


# ------------------------------------------------------------------------------ closed forms


class _SquareHead(nn.Module):
    """A layer ``features`` (identity on the input A) and a score S_c = sum_k W[c,k] sum_ij A_kij^2 / 2,
    so dS_c/dA_kij = W[c,k] A_kij: a gradient that varies with the position."""

    def __init__(self, weight):
        super().__init__()
        self.features = nn.Identity()
        self.weight = weight

    def forward(self, x):
        a = self.features(x)
        return torch.einsum("ck,nk->nc", self.weight, (a * a).sum(dim=(2, 3)) / 2)


def test_gradient_successors_closed_forms_where_the_gradient_varies_with_position():
    torch.manual_seed(0)
    weight = torch.tensor([[1.0, -0.5, 2.0], [0.3, 1.0, -1.0]])
    model = _SquareHead(weight)
    A = torch.rand(2, 3, 4, 5)
    A[1, 2] = 0.0  # a channel that sums to 0: XGrad-CAM's 0/0, weight 0
    targets = [[0, 1], [1, 0]]
    W = weight[torch.tensor(targets)]  # (N, K, C)
    g = W[..., None, None] * A[:, None]  # dS/dA, (N, K, C, h, w)
    expected = {
        "hirescam": F.relu((g * A[:, None]).sum(2)),
        "layer-cam": F.relu((F.relu(g) * A[:, None]).sum(2)),
    }
    total = A.sum(dim=(2, 3))
    share = torch.where(total[..., None, None] != 0, A / total.clamp_min(1e-30)[..., None, None], 0.0)
    xgrad_weights = (share[:, None] * g).sum(dim=(3, 4))  # = W_ck sum A^2 / sum A
    assert torch.allclose(
        xgrad_weights[:, :, :2], W[:, :, :2] * (A * A).sum((2, 3))[:, None, :2] / total[:, None, :2]
    )
    expected["xgrad-cam"] = F.relu(torch.einsum("nkc,nchw->nkhw", xgrad_weights, A))
    for name, closed in expected.items():
        ours = methods.create(name, model, layer="features", num_classes=2).attribute(A, targets)
        assert torch.allclose(ours, closed, rtol=1e-5, atol=1e-6), name  # layer at input size: no resize
        assert not torch.allclose(
            ours, methods.GradCAM(model, layer="features", num_classes=2).attribute(A, targets)
        )


# ------------------------------------------------------------------------------ HiResCAM, XGrad-CAM, LayerCAM


@pytest.fixture(scope="module")
def top2(embedded_model, ilsvrc_records):
    x = image_batch(embedded_model, ilsvrc_records, 2, start=20)
    forward = methods.GradCAM(embedded_model).forward(x)
    classes = forward.logits.detach().topk(2, dim=1).indices
    return x, forward, classes


@pytest.mark.parametrize(
    "name, oracle_name", [("hirescam", "HiResCAM"), ("xgrad-cam", "XGradCAM"), ("layer-cam", "LayerCAM")]
)
def test_gradient_successors_equal_pytorch_grad_cam(embedded_model, top2, name, oracle_name):
    """pytorch-grad-cam applies the ReLU in its BaseCAM for every method, normalises each map at the
    layer's resolution (1e-7 guard) and resizes with cv2 (bilinear, half-pixel centres): both
    brought to the one normaliser, the maps agree. XGrad-CAM: its 1e-7 in the denominator is
    negligible on real activations."""
    x, forward, classes = top2
    explainer = methods.create(name, embedded_model)
    ours = explainer.maps(forward, classes)  # the shared forward pass
    assert ours.shape == (2, 2, 224, 224) and (ours >= 0).all()
    assert torch.allclose(ours, explainer.attribute(x, classes), rtol=1e-5, atol=1e-6 * float(ours.max()))
    oracle = _oracle(oracle_name, embedded_model.module, embedded_model.spec.target_layer)
    for k in range(2):
        ref = torch.as_tensor(oracle(x, targets=_targets(classes[:, k])))
        assert (normalize_maps(ref) - normalize_maps(ours[:, k])).abs().max() <= 1e-4


def _gradient_successors(model, forward, classes):
    return {
        name: methods.create(name, model).maps(forward, classes)
        for name in ("hirescam", "xgrad-cam", "layer-cam")
    }


def test_hirescam_and_xgradcam_are_gradcam_where_the_gradient_is_uniform(mobilenet, ilsvrc_records):
    """MobileNet's target layer feeds global average pooling and the linear classifier directly:
    dy/dA^k_ij = W_ck / Z at every position, so HiResCAM and XGrad-CAM are Grad-CAM exactly (raw
    maps), and LayerCAM is ReLU(sum_k ReLU(W_ck) A^k) / Z, not Grad-CAM."""
    x = image_batch(mobilenet, ilsvrc_records, 2, start=30)
    forward = methods.GradCAM(mobilenet).forward(x)
    classes = forward.logits.detach().topk(3, dim=1).indices
    gradcam = methods.GradCAM(mobilenet).maps(forward, classes)
    maps = _gradient_successors(mobilenet, forward, classes)
    for name in ("hirescam", "xgrad-cam"):
        assert torch.allclose(maps[name], gradcam, rtol=1e-4, atol=1e-5 * float(gradcam.max())), name
    A = forward.activations.detach()
    W = models.get_layer(mobilenet.module, mobilenet.spec.classifier).weight[classes]  # (N, K, C)
    closed = F.relu(torch.einsum("nkc,nchw->nkhw", F.relu(W), A)) / (A.shape[-2] * A.shape[-1])
    layercam = maps["layer-cam"]
    assert torch.allclose(layercam, upsample(closed, (224, 224)), rtol=1e-4, atol=1e-6 * float(closed.max()))
    assert (normalize_maps(layercam) - normalize_maps(gradcam)).abs().max() > 0.05


def test_successors_on_squeezenet_closed_forms_and_differences_from_gradcam(squeezenet, ilsvrc_records):
    """SqueezeNet's target layer A feeds a 1x1 convolution z_c = sum_k W_ck A^k + b_c, a ReLU and
    average pooling, so dy^c/dA^k_ij = W_ck [z_cij > 0] / Z varies with the position:
    Grad-CAM = rho_c ReLU(z_c - b_c) / Z (rho_c: share of positions with z_c > 0);
    HiResCAM = ReLU([z_c > 0] (z_c - b_c)) / Z, so the same map up to the scale rho_c except where
    z_c <= 0 < z_c - b_c (b_c < 0, small here): normalised maps equal within 1e-3;
    XGrad-CAM weights W_ck s_ck / Z (s_ck: share of channel k's activation at positions with
    z_c > 0): a different map; LayerCAM = ReLU([z_c > 0] sum_k ReLU(W_ck) A^k) / Z."""
    x = image_batch(squeezenet, ilsvrc_records, 2, start=30)
    forward = methods.GradCAM(squeezenet).forward(x)
    classes = forward.logits.detach().topk(3, dim=1).indices
    gradcam = methods.GradCAM(squeezenet).maps(forward, classes)
    maps = _gradient_successors(squeezenet, forward, classes)

    A = forward.activations.detach()
    conv = models.get_layer(squeezenet.module, squeezenet.spec.classifier)
    W = conv.weight.flatten(1)[classes]  # (N, K, C)
    b = conv.bias[classes][..., None, None]
    z = torch.einsum("nkc,nchw->nkhw", W, A) + b  # the classifier's output for the classes
    positive = (z > 0).to(A.dtype)
    area = A.shape[-2] * A.shape[-1]
    share = torch.einsum("nkhw,nchw->nkc", positive, A) / A.sum(dim=(2, 3)).clamp_min(1e-30)[:, None]
    closed = {
        "grad-cam": positive.mean(dim=(2, 3), keepdim=True) * F.relu(z - b) / area,
        "hirescam": F.relu(positive * (z - b)) / area,
        "xgrad-cam": F.relu(torch.einsum("nkc,nchw->nkhw", W * share, A)) / area,
        "layer-cam": F.relu(positive * torch.einsum("nkc,nchw->nkhw", F.relu(W), A)) / area,
    }
    for name, expected in closed.items():
        ours = gradcam if name == "grad-cam" else maps[name]
        expected = upsample(expected, (224, 224))
        assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-5 * float(expected.max())), name

    assert positive.mean(dim=(2, 3)).min() < 1  # some class is not positive everywhere ...
    assert not torch.allclose(maps["hirescam"], gradcam, rtol=1e-3)  # ... so the raw maps differ
    assert (normalize_maps(maps["hirescam"]) - normalize_maps(gradcam)).abs().max() <= 1e-3
    for name in ("xgrad-cam", "layer-cam"):
        assert (normalize_maps(maps[name]) - normalize_maps(gradcam)).abs().max() > 0.05, name


# ------------------------------------------------------------------------------ Score-CAM


class _TinyNet(nn.Module):
    """Conv-ReLU-pool-conv-ReLU (the target layer ``features.4``), global average pooling and a
    linear classifier; channel 2 of the target layer is 0 everywhere (a constant channel)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 5, 3, padding=1),
            nn.ReLU(),
        )
        with torch.no_grad():
            self.features[3].weight[2] = 0.0
            self.features[3].bias[2] = -1.0
        self.classifier = nn.Linear(5, 4)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def _tiny():
    return models.prepare(_TinyNet(), torch.device("cpu"))


def _direct_score_cam(module, layer, x, classes, variant):
    """Score-CAM by its definition, one masked forward pass per image, class and channel."""
    captured = {}
    handle = models.get_layer(module, layer).register_forward_hook(lambda m, a, out: captured.update(A=out))
    with torch.no_grad():
        module(x)
        handle.remove()
        A = captured["A"]
        size = x.shape[-2:]
        baseline = torch.softmax(module(torch.zeros_like(x[:1])), dim=1)[0]
        maps = torch.zeros(x.shape[0], classes.shape[1], *size)
        for n in range(x.shape[0]):
            for k, c in enumerate(classes[n].tolist()):
                scores = []
                for channel in range(A.shape[1]):
                    a = A[n, channel][None, None]
                    if variant == "paper":
                        mask = normalize_maps(upsample(a, size))  # constant -> 0
                    else:
                        up = F.interpolate(a, size=size, mode="bilinear", align_corners=True)
                        mask = (up - up.min()) / (up.max() - up.min() + 1e-8)
                    out = module(x[n : n + 1] * mask)[0]
                    scores.append(torch.softmax(out, 0)[c] - baseline[c] if variant == "paper" else out[c])
                weights = torch.stack(scores)
                if variant != "paper":
                    weights = torch.softmax(weights, 0)
                cam = F.relu(torch.einsum("c,chw->hw", weights, A[n]))
                maps[n, k] = upsample(cam[None, None], size)[0, 0]
    return maps


@pytest.mark.parametrize("variant", ["paper", "pytorch-grad-cam"])
def test_score_cam_closed_form_and_batching_on_a_tiny_model(variant):
    model = _tiny()
    torch.manual_seed(4)
    x = torch.randn(3, 3, 12, 12)
    classes = torch.tensor([[0, 3], [2, 1], [1, 1]])
    expected = _direct_score_cam(model, "features.4", x, classes, variant)
    for batch_size in (1, 4, 64):  # chunks within and across images
        explainer = methods.create(
            "score-cam", model, layer="features.4", batch_size=batch_size, variant=variant
        )
        ours = explainer.attribute(x, classes)
        assert ours.shape == (3, 2, 12, 12)
        assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max())), batch_size


def test_score_cam_pytorch_grad_cam_variant_equals_pytorch_grad_cam_on_a_tiny_model():
    model = _tiny()
    torch.manual_seed(5)
    x = torch.randn(2, 3, 12, 12)
    ours = methods.ScoreCAM(model, layer="features.4", variant="pytorch-grad-cam").attribute(
        x, [[3, 0], [1, 2]]
    )
    oracle = _oracle("ScoreCAM", model, "features.4")
    for k, classes in enumerate(([3, 1], [0, 2])):
        ref = torch.as_tensor(oracle(x, targets=_targets(torch.tensor(classes))))
        assert (normalize_maps(ref) - normalize_maps(ours[:, k])).abs().max() <= 1e-4


class _InputCounter:
    """Counts the images a module is called on."""

    def __init__(self, module):
        self.images = 0
        self.calls = 0
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.images += args[0].shape[0]
        self.calls += 1


def test_score_cam_skips_constant_channels_with_one_baseline_pass_and_honours_batch_size():
    model = _tiny()
    x = torch.randn(3, 3, 12, 12)
    explainer = methods.create("score-cam", model, layer="features.4", batch_size=5, progress=True)
    forward = explainer.forward(x)
    classes = forward.logits.detach().topk(2, dim=1).indices
    counter = _InputCounter(model)
    masked = explainer.masked_scores(forward, classes)
    counter.handle.remove()
    assert masked.constant[:, 2].all() and int(masked.constant.sum()) >= 3
    computed = 3 * 5 - int(masked.constant.sum())
    assert counter.images == 1 + computed  # the baseline once, then each non-constant channel
    assert counter.calls == 1 + -(-computed // 5)  # batches of 5 masked inputs
    # the paper's weight of a constant channel: X * 0 is the baseline, C = f(X_b) - f(X_b) = 0
    weights = explainer.score_weights(masked)
    assert (weights[:, :, 2] == 0).all()
    with pytest.raises(ValueError, match="masked scores of variant 'paper'"):
        methods.ScoreCAM(model, layer="features.4", variant="pytorch-grad-cam").score_weights(masked)
    with pytest.raises(ValueError, match="Score-CAM needs the images"):
        explainer.maps(forward._replace(images=None), classes)


SCORE_CAM_SIZE = 112  # real images at 112 x 112: Score-CAM costs one forward pass per channel


@pytest.fixture(scope="module")
def score_cam_case(embedded_model, ilsvrc_records):
    x = image_batch(embedded_model, ilsvrc_records, 2, start=40)
    x = F.interpolate(x, size=(SCORE_CAM_SIZE,) * 2, mode="bilinear", antialias=True)
    explainer = methods.ScoreCAM(embedded_model, variant="pytorch-grad-cam")
    forward = explainer.forward(x)
    classes = forward.logits.detach().argmax(1, keepdim=True)
    masked = explainer.masked_scores(forward, classes)
    return x, forward, classes, masked, explainer.maps(forward, classes, masked)


def test_score_cam_equals_pytorch_grad_cam(embedded_model, score_cam_case):
    """The pytorch-grad-cam variant (raw logits, softmax over channels, align_corners=True masks,
    1e-8 guard) on real embedded images, two images per batch of masked inputs."""
    x, forward, classes, masked, ours = score_cam_case
    assert ours.shape == (2, 1, SCORE_CAM_SIZE, SCORE_CAM_SIZE)
    assert masked.constant.any()  # the shortcut is exercised on real activations
    oracle = _oracle("ScoreCAM", embedded_model.module, embedded_model.spec.target_layer)
    oracle.batch_size = 64
    ref = torch.as_tensor(oracle(x, targets=_targets(classes[:, 0])))
    assert (normalize_maps(ref) - normalize_maps(ours[:, 0])).abs().max() <= 1e-4


def test_score_cam_paper_variant_and_constant_channel_shortcut_on_real_images(embedded_model, score_cam_case):
    """The paper's variant (Definition 2: softmax probability on X * H^k minus that on X_b = 0) on
    one real image, with and without the constant-channel shortcut: the same masked scores (up to
    the rounding of CPU kernels, which depends on the batch an input is evaluated in) and maps;
    and the weights of some channels against a direct forward pass of their masked input."""
    x, forward, classes, _, _ = score_cam_case
    explainer = methods.ScoreCAM(embedded_model)
    forward = explainer.forward(x[:1])
    classes = classes[:1]
    fast = explainer.masked_scores(forward, classes)
    slow = methods.ScoreCAM(embedded_model, skip_constant_channels=False).masked_scores(forward, classes)
    assert torch.equal(fast.constant, slow.constant) and fast.constant.any()
    scale = float(slow.logits.abs().max())
    assert torch.allclose(fast.logits, slow.logits, rtol=0, atol=1e-5 * scale)
    assert torch.allclose(fast.log_normalizer, slow.log_normalizer, rtol=0, atol=1e-5 * scale)
    fast_maps, slow_maps = explainer.maps(forward, classes, fast), explainer.maps(forward, classes, slow)
    assert (normalize_maps(fast_maps) - normalize_maps(slow_maps)).abs().max() <= 1e-5

    weights = explainer.score_weights(fast)[0, 0]
    assert (weights[fast.constant[0]] == 0).all()
    A = forward.activations.detach()[0]
    c = int(classes[0, 0])
    with torch.no_grad():
        baseline = torch.softmax(embedded_model.module(torch.zeros_like(x[:1])), 1)[0, c]
        for channel in [*A.sum((1, 2)).topk(3).indices.tolist(), int(fast.constant[0].nonzero()[0])]:
            mask = normalize_maps(upsample(A[channel][None, None], x.shape[-2:]))
            probability = torch.softmax(embedded_model.module(x[:1] * mask), 1)[0, c]
            assert abs(float(probability - baseline) - float(weights[channel])) <= 1e-5, channel
