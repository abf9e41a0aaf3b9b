"""Identity, perceptual and FID networks: official layouts, strict loaders, preprocessing, factory."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from guide_ray.errors import ConfigError, WeightsInvalid, WeightsMissing
from guide_ray.models.nets import factory
from guide_ray.models.nets.base import IdentityEmbedder, PerceptualDistance
from guide_ray.models.nets.identity import (
    CurricularFaceIdentity,
    InsightFaceIdentity,
    IRSE50Identity,
    idloss_crop,
)
from guide_ray.models.nets.inception import (
    FeatureExtractor,
    InceptionFeatures,
    PytorchFidInception,
    StandInFeatures,
    fid_inception_v3,
)
from guide_ray.models.nets.irse import build_ir101, build_ir_se50, load_curricularface, load_ir_se50
from guide_ray.models.nets.perceptual import LpipsVGG
from guide_ray.utils.files import file_sha256

# ---------------------------------------------------------------- IR-SE50 / IR-101 layout and loading


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """Every tensor moved off its constructor default, keeping the signal alive through 50+ layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                t.fill_(7)                                     # num_batches_tracked
            elif "running_var" in name:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif not t.any():                                  # biases, running means
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
            else:                                              # weights: keep the init's scale
                t.mul_(1 + 0.1 * torch.randn(t.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def ir_se50() -> nn.Module:
    return _randomised(build_ir_se50(), seed=1)


@pytest.fixture(scope="module")
def ir_se50_file(ir_se50: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w") / "model_ir_se50.pth"
    torch.save(ir_se50.state_dict(), path)
    return path


@pytest.mark.parametrize(("fixture", "build"), [("ir_se50", build_ir_se50), ("curricularface_ir101", build_ir101)])
def test_backbone_layout_equals_official(shared_dir: Path, fixture: str, build) -> None:
    official = json.loads((shared_dir / f"fixtures/idnet/{fixture}.keys.json").read_text())
    model = build()
    params = {n for n, _ in model.named_parameters()}
    got = [[k, list(v.shape), "parameter" if k in params else "buffer", str(v.dtype).removeprefix("torch.")]
           for k, v in model.state_dict().items()]
    assert got == official["state_dict"]                       # names, shapes, kinds, dtypes, order
    assert sum(p.numel() for p in model.parameters()) == official["num_parameters"]


def test_load_ir_se50_takes_every_tensor(ir_se50: nn.Module, ir_se50_file: Path) -> None:
    loaded = load_ir_se50(ir_se50_file)
    for name, tensor in ir_se50.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_loader_tolerates_missing_num_batches_tracked(ir_se50: nn.Module, tmp_path: Path) -> None:
    state = {k: v for k, v in ir_se50.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(ir_se50.state_dict())              # old-PyTorch checkpoints lack them
    torch.save(state, tmp_path / "old.pth")
    loaded = load_ir_se50(tmp_path / "old.pth")
    assert torch.equal(loaded.state_dict()["body.3.res_layer.1.weight"], state["body.3.res_layer.1.weight"])


@pytest.mark.parametrize("mutation", ["drop_running_mean", "drop_weight", "extra_key", "wrong_shape", "module_prefix"])
def test_loader_rejects_any_other_mismatch(ir_se50: nn.Module, tmp_path: Path, mutation: str) -> None:
    state = dict(ir_se50.state_dict())
    culprit = "body.5.res_layer.1.weight"
    if mutation == "drop_running_mean":
        culprit = "body.5.res_layer.0.running_mean"
        del state[culprit]
    elif mutation == "drop_weight":
        del state[culprit]
    elif mutation == "extra_key":
        culprit = "output_layer.5.weight"
        state[culprit] = torch.zeros(3)
    elif mutation == "wrong_shape":
        state[culprit] = state[culprit][:, :-1]
    else:
        state = {f"module.{k}": v for k, v in state.items()}
        culprit = "module.input_layer.0.weight"
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsInvalid, match=culprit.replace(".", r"\.")):
        load_ir_se50(tmp_path / "bad.pth")


class _NotATensor:
    pass


def test_loader_refuses_pickled_objects(tmp_path: Path) -> None:
    torch.save({"input_layer.0.weight": _NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsInvalid, match="tensors-only"):
        load_ir_se50(tmp_path / "evil.pth")


@pytest.mark.parametrize(("loader", "file_name", "source"), [
    (load_ir_se50, "model_ir_se50.pth", "1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn"),
    (load_curricularface, "CurricularFace_Backbone.pth", "1f4IwVa2-Bn9vWLwB-bUwm53U_MlvinAj"),
])
def test_missing_file_names_file_and_source(tmp_path: Path, loader, file_name: str, source: str) -> None:
    with pytest.raises(WeightsMissing) as info:
        loader(tmp_path / file_name)
    assert info.value.path == tmp_path / file_name
    assert file_name in str(info.value) and source in str(info.value)


def test_load_curricularface_takes_every_tensor(tmp_path: Path) -> None:
    model = _randomised(build_ir101(), seed=2)
    torch.save(model.state_dict(), tmp_path / "CurricularFace_Backbone.pth")
    loaded = load_curricularface(tmp_path / "CurricularFace_Backbone.pth").state_dict()
    assert "output_layer.4.weight" not in loaded                 # non-affine final BatchNorm1d
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- identity embedders


def test_irse50_identity_is_guides_idloss_pipeline(ir_se50: nn.Module) -> None:
    embedder = IRSE50Identity(ir_se50)
    assert isinstance(embedder, IdentityEmbedder) and embedder.stand_in is False
    x = torch.rand(2, 3, 160, 160) * 2 - 1
    # GUIDE: bilinear to 256 (align_corners=False), rows 35:223, cols 32:220, adaptive avg-pool to 112.
    ref = F.interpolate(x, (256, 256), mode="bilinear", align_corners=False)[:, :, 35:223, 32:220]
    with torch.no_grad():
        expected = ir_se50(nn.AdaptiveAvgPool2d((112, 112))(ref))
        got = embedder(x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(2))


def test_irse50_identity_sees_only_the_face_crop_and_passes_gradients(ir_se50: nn.Module) -> None:
    embedder = IRSE50Identity(ir_se50).train()                   # must stay in eval mode
    assert not embedder.training and not embedder.facenet.training
    x = (torch.rand(1, 3, 256, 256) * 2 - 1).requires_grad_(True)
    base = embedder(x)
    base.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in embedder.parameters())    # frozen: no wasted weight grads
    outside, inside = x.detach().clone(), x.detach().clone()
    outside[:, :, :35], outside[:, :, :, 220:] = 1.0, -1.0       # rows above / columns right of the crop
    inside[:, :, 100:140, 100:140] = 1.0
    with torch.no_grad():
        torch.testing.assert_close(embedder(outside), base.detach(), atol=0, rtol=0)
        assert (embedder(inside) - base).abs().max() > 1e-4


def test_curricularface_identity_labels_its_alignment(ir_se50: nn.Module) -> None:
    default = CurricularFaceIdentity(ir_se50)                    # the wrapper is backbone-agnostic
    assert "no-mtcnn" in default.name and default.stand_in is False
    aligned = CurricularFaceIdentity(ir_se50, crop="none")
    assert aligned.name != default.name
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), ir_se50(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match="112x112"):
        aligned(torch.zeros(1, 3, 128, 128))


def _arcface_like_onnx(path: Path, *, mxnet_style: bool, size: int = 112, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[1, 3, S, S] → [1, 512]: (optional Sub/Mul normalisation) → GAP → MatMul W → Add b."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal((3, 512)).astype(np.float32), rng.standard_normal(512).astype(np.float32)
    nodes, inits, first = [], [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")], "data"
    if mxnet_style:                                           # what insightface looks for in mxnet exports
        inits += [numpy_helper.from_array(np.float32(127.5).reshape(1), "mean"),
                  numpy_helper.from_array(np.float32(0.0078125).reshape(1), "scale")]
        nodes += [helper.make_node("Sub", ["data", "mean"], ["centered"], name="_minusscalar0"),
                  helper.make_node("Mul", ["centered", "scale"], ["scaled"], name="_mulscalar0")]
        first = "scaled"
    nodes += [helper.make_node("GlobalAveragePool", [first], ["gap"], name="pool"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("MatMul", ["flat", "W"], ["mm"], name="fc"),
              helper.make_node("Add", ["mm", "b"], ["fc1"], name="bias")]
    graph = helper.make_graph(
        nodes, "arcface_like", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, str(path))
    return w, b


@pytest.mark.parametrize("mxnet_style", [False, True])
def test_insightface_identity_applies_the_models_normalisation(tmp_path: Path, mxnet_style: bool) -> None:
    w, b = _arcface_like_onnx(tmp_path / "rec.onnx", mxnet_style=mxnet_style)
    embedder = InsightFaceIdentity(tmp_path / "rec.onnx", crop="none")
    x = torch.rand(3, 3, 112, 112) * 2 - 1                    # 3 faces through a batch-1 graph
    pixels = (x.numpy().astype(np.float64) + 1) * 127.5       # what cv2 would hand insightface, RGB
    graph_in = (pixels - 127.5) * 0.0078125 if mxnet_style else (pixels - 127.5) / 127.5
    expected = graph_in.mean(axis=(2, 3)) @ w + b
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = embedder(x)
    assert got.shape == (3, 512) and not got.requires_grad
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    assert embedder.stand_in is False and embedder.name.startswith("insightface:rec")


def test_insightface_identity_default_crop_and_errors(tmp_path: Path) -> None:
    _arcface_like_onnx(tmp_path / "rec.onnx", mxnet_style=False)
    embedder = InsightFaceIdentity(tmp_path / "rec.onnx")
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    direct = InsightFaceIdentity(tmp_path / "rec.onnx", crop="none")(idloss_crop(x))
    torch.testing.assert_close(embedder(x), direct)
    with pytest.raises(WeightsMissing, match="w600k_r50.onnx"):
        InsightFaceIdentity(tmp_path / "absent.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf" * 8)
    with pytest.raises(WeightsInvalid, match="garbage.onnx"):
        InsightFaceIdentity(tmp_path / "garbage.onnx")
    _arcface_like_onnx(tmp_path / "small.onnx", mxnet_style=False, size=64)   # not routed to ArcFace
    with pytest.raises(WeightsInvalid, match="recognition"):
        InsightFaceIdentity(tmp_path / "small.onnx")


# ---------------------------------------------------------------- LPIPS-VGG


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Tensor]]:
    """torchvision VGG16 with seeded random weights, saved under the official file name."""
    from torchvision.models import vgg16

    torch.manual_seed(5)
    state = vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision.models._utils")
def test_lpips_vgg_uses_the_files_trunk_and_lpips_semantics(vgg_file: tuple[Path, dict[str, Tensor]]) -> None:
    import lpips

    path, state = vgg_file
    ours = LpipsVGG(path)
    assert isinstance(ours, PerceptualDistance) and ours.stand_in is False
    trunk = dict(ours.lpips.net.named_parameters())
    assert torch.equal(trunk["slice1.0.weight"], state["features.0.weight"])
    assert torch.equal(trunk["slice5.28.bias"], state["features.28.bias"])
    ref = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    for block in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5):
        for index, layer in block.named_children():
            if isinstance(layer, nn.Conv2d):
                layer.weight.data.copy_(state[f"features.{index}.weight"])
                layer.bias.data.copy_(state[f"features.{index}.bias"])
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    d = ours(x, y)
    assert d.shape == (2,)
    torch.testing.assert_close(d, ref(x, y).flatten(), atol=0, rtol=0)
    assert float(ours(x, x).abs().max()) == 0.0
    assert not ours.train().training and not any(p.requires_grad for p in ours.parameters())


def test_lpips_vgg_errors(tmp_path: Path, vgg_file: tuple[Path, dict[str, Tensor]]) -> None:
    with pytest.raises(WeightsMissing) as info:
        LpipsVGG(tmp_path / "vgg16-397923af.pth")
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in str(info.value)
    _, state = vgg_file
    partial = {k: v for k, v in state.items() if not k.startswith("classifier.6")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(WeightsInvalid, match="classifier.6"):
        LpipsVGG(tmp_path / "partial.pth")


# ---------------------------------------------------------------- FID feature extractors


class _FakeInceptionLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2048, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.adaptive_avg_pool2d(x * x, 1) + F.adaptive_avg_pool2d(x, 1))   # [B, 2048, 1, 1]


class _FakeInception(nn.Module):
    """Same TorchScript surface as clean-fid's Inception: `.layers` on normalised 299² input."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _FakeInceptionLayers()

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@pytest.fixture()
def fake_inception(tmp_path: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(11)
    module = _FakeInception().eval()
    path = tmp_path / "inception-2015-12-05.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)           # TorchScript is deprecated in torch 2.9+
        torch.jit.script(module).save(str(path))
    return path, module


def _pil_bicubic_299(img_hwc: np.ndarray) -> np.ndarray:
    """clean-fid 'clean' resize, written out: PIL bicubic on each float32 channel, clipped to [0, 255]."""
    chans = [np.asarray(Image.fromarray(img_hwc[:, :, i].astype(np.float32)).resize((299, 299), Image.BICUBIC))
             for i in range(3)]
    return np.stack(chans, axis=2).clip(0, 255)


def test_inception_features_follow_clean_fid(fake_inception: tuple[Path, nn.Module]) -> None:
    path, module = fake_inception
    extractor = InceptionFeatures(path, sha256=file_sha256(path))
    assert isinstance(extractor, FeatureExtractor) and extractor.dim == 2048
    images = torch.randint(0, 256, (2, 3, 96, 80), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    resized = np.stack([_pil_bicubic_299(img.permute(1, 2, 0).numpy()) for img in images])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        expected = module.layers((x - 128) / 128).reshape(2, 2048)
    torch.testing.assert_close(extractor(images), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        extractor(images.float())


def test_inception_refuses_wrong_hash_and_missing_file(fake_inception: tuple[Path, nn.Module], tmp_path: Path) -> None:
    path, _ = fake_inception
    with pytest.raises(WeightsInvalid, match="refusing to load TorchScript"):
        InceptionFeatures(path, sha256="0" * 64)
    with pytest.raises(WeightsMissing, match="nvlabs-fi-cdn"):
        InceptionFeatures(tmp_path / "nothing" / "inception-2015-12-05.pt", sha256=None)


def test_standin_features_are_seeded_labelled_and_rng_neutral() -> None:
    state = torch.random.get_rng_state()
    a, b = StandInFeatures(), StandInFeatures()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.stand_in and "stand-in" in a.name and isinstance(a, FeatureExtractor)
    images = torch.randint(0, 256, (3, 3, 128, 128), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    fa = a(images)
    assert fa.shape == (3, a.dim)
    torch.testing.assert_close(fa, b(images), atol=0, rtol=0)
    assert (fa[0] - fa[1]).abs().max() > 1e-6


# ---------------------------------------------------------------- factory


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision.models._utils")   # from lpips, via the stand-in
def test_factory_tiny_needs_no_files(tmp_path: Path) -> None:
    nowhere = tmp_path / "does-not-exist"
    nets = factory.build_loss_nets("tiny", nowhere, "cpu")
    assert nets.stand_in and nets.perceptual.stand_in and nets.identity.stand_in
    assert factory.build_id_metric("tiny", nowhere, "cpu", kind="insightface").stand_in
    assert factory.build_fid_extractor("tiny", nowhere, "cpu").stand_in


def test_factory_real_backend_never_falls_back(tmp_path: Path, vgg_file: tuple[Path, dict[str, Tensor]]) -> None:
    with pytest.raises(WeightsMissing, match="vgg16-397923af.pth"):
        factory.build_loss_nets("eg3d-ffhq512-128", tmp_path, "cpu")
    with pytest.raises(WeightsMissing, match="CurricularFace_Backbone.pth"):
        factory.build_id_metric("eg3d-ffhq512-128", tmp_path, "cpu")
    with pytest.raises(WeightsMissing, match="pt_inception-2015-12-05-6726825d.pth"):
        factory.build_fid_extractor("eg3d-ffhq512-128", tmp_path, "cpu")               # GUIDE's extractor
    with pytest.raises(WeightsMissing, match="inception-2015-12-05.pt"):
        factory.build_fid_extractor("eg3d-ffhq512-128", tmp_path, "cpu", "clean-fid")
    (tmp_path / "vgg16-397923af.pth").symlink_to(vgg_file[0])   # right name, not the published bytes
    with pytest.raises(WeightsInvalid, match="sha256"):
        factory.build_loss_nets("eg3d-ffhq512-128", tmp_path, "cpu")
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        factory.build_loss_nets("tiyn", tmp_path, "cpu")


def test_factory_builds_the_insightface_metric_from_the_weights_dir(tmp_path: Path) -> None:
    _arcface_like_onnx(tmp_path / "w600k_r50.onnx", mxnet_style=False)
    metric = factory.build_id_metric("eg3d-ffhq512-128", tmp_path, "cpu", kind="insightface")
    assert isinstance(metric, InsightFaceIdentity) and metric.stand_in is False


# ---------------------------------------------------------------- pytorch-fid's Inception (GUIDE's extractor)


@pytest.fixture(scope="module")
def fake_pt_inception(tmp_path_factory) -> tuple[Path, dict[str, Tensor]]:
    """A file in the exact format of pt_inception-2015-12-05-6726825d.pth (random weights, same keys/shapes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = fid_inception_v3().state_dict()
    path = tmp_path_factory.mktemp("ptfid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path, state


def test_pytorch_fid_extractor_equals_pytorch_fid(fake_pt_inception, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same features as pytorch-fid's own InceptionV3 (its download replaced by the same tensors)."""
    import pytorch_fid.inception as reference

    path, state = fake_pt_inception
    monkeypatch.setattr(reference, "load_state_dict_from_url", lambda *a, **k: state)
    ref = reference.InceptionV3([reference.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    ours = PytorchFidInception.from_file(path, sha256_prefix=None)
    assert isinstance(ours, FeatureExtractor) and ours.name == "pytorch-fid-inception-v3" and not ours.stand_in
    images = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(images.float() / 255)[0].flatten(1)          # pytorch-fid's input: ToTensor() in [0, 1]
    got = ours(images)
    assert got.shape == (2, 2048) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_pytorch_fid_loader_checks_hash_prefix_and_format(fake_pt_inception, tmp_path: Path) -> None:
    path, state = fake_pt_inception
    with pytest.raises(WeightsInvalid, match="does not start with the published 6726825d"):
        PytorchFidInception.from_file(path, sha256_prefix="6726825d")           # random weights: not the file
    with pytest.raises(WeightsMissing, match="github.com/mseitzer/pytorch-fid"):
        PytorchFidInception.from_file(tmp_path / "absent.pth", sha256_prefix=None)
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, tmp_path / "partial.pth")
    with pytest.raises(WeightsInvalid, match="fc.weight"):
        PytorchFidInception.from_file(tmp_path / "partial.pth", sha256_prefix=None)
    torch.save({"net": nn.Linear(2, 2)}, tmp_path / "pickled.pth")
    with pytest.raises(WeightsInvalid, match="not a torch state_dict"):
        PytorchFidInception.from_file(tmp_path / "pickled.pth", sha256_prefix=None)
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / path.name).symlink_to(path)
    with pytest.raises(WeightsInvalid, match="6726825d"):                      # the factory checks the prefix
        factory.build_fid_extractor("eg3d-ffhq512-128", weights_dir, "cpu")
