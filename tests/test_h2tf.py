"""H2TF: exactly ⌊ρC⌋ channels of the tail-drawn samples replaced, labels kept (a full
``ce → crt+h2tf`` run is in test_pif.py with the other fusion pipelines)."""

import pytest
import torch

from longtail.methods import Batch, StageContext, make_method
from longtail.methods.pih2t import H2TF, fused_channel_count, head_to_tail_fuse
from longtail.models import build_model


@pytest.mark.parametrize("ratio,expected", [(0.1, 6), (0.25, 16), (0.5, 32), (0.7, 44), (0.0, 0), (1.0, 64)])
def test_channel_count_is_floor(ratio, expected):
    assert fused_channel_count(64, ratio) == expected


def test_fusion_replaces_exactly_the_chosen_channels():
    ft, fh = torch.randn(4, 64, 3, 3), torch.randn(4, 64, 3, 3)
    ch = torch.randperm(64)[:16]
    out = head_to_tail_fuse(ft, fh, ch)
    taken = torch.zeros(64, dtype=torch.bool)
    taken[ch] = True
    assert torch.equal(out[:, taken], fh[:, taken]) and torch.equal(out[:, ~taken], ft[:, ~taken])
    assert not torch.equal(out, ft)  # inputs untouched, output new


def test_plugin_fuses_tail_batch_with_head_batch_and_keeps_labels():
    torch.manual_seed(0)
    model = build_model("resnet8", 5, 1).train()  # the hook is inert in eval mode
    ctx = StageContext(torch.tensor([50.0, 20, 10, 5, 2]), 5, 1, 1, torch.device("cpu"), model, True)
    method = H2TF(ctx, make_method("crt", ctx), ratio=0.25)
    assert method.extra_samplers == {"head": "instance"}
    xt, xh = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    yt = torch.tensor([4, 4, 3, 2, 1, 0])
    batch = Batch(xt, yt, torch.arange(6), {"head": Batch(xh, torch.zeros(6, dtype=torch.long), torch.arange(6))})
    ft, fh = model.features(xt), model.features(xh)
    fused = method.transform_features(ft, batch)
    from_head = [(fused[:, c] == fh[:, c]).all().item() and not (fused[:, c] == ft[:, c]).all().item() for c in range(64)]
    from_tail = [(fused[:, c] == ft[:, c]).all().item() for c in range(64)]
    assert sum(from_head) == 16 and sum(from_tail) == 48
    assert torch.equal(batch.y, yt)  # the loss uses the tail labels
    loss = method.loss(model.head(model.pool(fused)), batch)
    assert torch.isfinite(loss)
