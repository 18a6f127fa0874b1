import pytest
import torch

from longtail.errors import LongtailError
from longtail.models import build_model


@pytest.mark.parametrize("arch,channels,size,feat,fmap", [
    ("resnet32", 1, 28, 64, 7), ("resnet32", 3, 32, 64, 8), ("resnet8", 1, 8, 64, 2),
    ("resnet18_cifar", 3, 32, 512, 4), ("resnet34_cifar", 3, 32, 512, 4), ("resnet50", 3, 64, 2048, 2), ("resnext50", 3, 64, 2048, 2),
])
def test_split_interface_matches_forward(arch, channels, size, feat, fmap):
    torch.manual_seed(0)
    m = build_model(arch, 7, channels).eval()
    x = torch.randn(2, channels, size, size)
    f = m.features(x)
    assert f.shape == (2, feat, fmap, fmap) and m.feature_dim == feat
    emb = m.pool(f)
    assert emb.shape == (2, feat)
    assert torch.equal(m.head(emb), m(x))


def test_resnet32_has_the_published_size_and_cosine_head():
    m = build_model("resnet32", 10, 3)
    assert sum(p.numel() for p in m.parameters()) == 464_154  # 0.46M with a 10-class head (He et al. 2016, Table 6)
    c = build_model("resnet32", 10, 3, head="cosine")
    out = c.head(torch.randn(4, 64))
    assert out.abs().max() <= 1.0 + 1e-6  # cosine logits


def test_unknown_model():
    with pytest.raises(LongtailError, match="unknown model"):
        build_model("vgg", 10, 3)


def test_cifar_resnet18_and_34_have_their_published_sizes():
    """11.2 M and 21.3 M parameters with a 100-way head (pytorch-cifar's ResNet-18 / 34)."""
    sizes = {a: sum(p.numel() for p in build_model(a, 100, 3).parameters()) for a in ("resnet18_cifar", "resnet34_cifar")}
    assert sizes == {"resnet18_cifar": 11_220_132, "resnet34_cifar": 21_328_292}
