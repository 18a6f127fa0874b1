"""``+mixup``: the model sees λ x + (1 − λ) x[π] and the loss is λ ℓ(y) + (1 − λ) ℓ(y[π]) with
the base method's own ℓ, checked against the same draws made by hand."""

import pytest
import torch
import torch.nn.functional as F

from longtail.errors import LongtailError
from longtail.methods import Batch, StageContext, make_method
from longtail.methods.mixup import Mixup
from longtail.models import build_model

COUNTS = torch.tensor([50.0, 20, 10, 5, 2])


def _setup(base_id):
    torch.manual_seed(0)
    model = build_model("resnet8", 5, 1).eval()  # eval: BatchNorm makes the two forwards comparable
    ctx = StageContext(COUNTS, 5, 1, 1, torch.device("cpu"), model)
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 0, 1, 2, 3, 4])
    return model, ctx, Batch(x, y, torch.arange(6))


@pytest.mark.parametrize("base_id", ["ce", "balanced_softmax"])
def test_mixup_mixes_inputs_and_targets_through_the_base_loss(base_id):
    model, ctx, batch = _setup(base_id)
    base = make_method(base_id, ctx)
    method = Mixup(ctx, base, alpha=0.4)
    torch.manual_seed(7)
    loss = method.training_step(model, batch)
    torch.manual_seed(7)  # the same draws, by hand
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(6)
    logits = model(lam * batch.x + (1 - lam) * batch.x[perm])
    if base_id == "balanced_softmax":  # Balanced Softmax: CE on logits + log prior (Ren et al. Eq. 4)
        logits = logits + torch.log(COUNTS / COUNTS.sum())
    want = lam * F.cross_entropy(logits, batch.y) + (1 - lam) * F.cross_entropy(logits, batch.y[perm])
    assert 0 < lam < 1 and not torch.equal(perm, torch.arange(6))
    assert torch.allclose(loss, want, atol=1e-5)


def test_mixup_refuses_bad_alpha_and_mixes_over_a_frozen_backbone():
    model, ctx, _ = _setup("ce")
    with pytest.raises(LongtailError, match="alpha"):
        Mixup(ctx, make_method("ce", ctx), alpha=0)
    # GCL's classifier stage mixes images over a frozen backbone (cifar_train_classifier.py)
    frozen = StageContext(COUNTS, 5, 1, 1, torch.device("cpu"), model, True)
    Mixup(frozen, make_method("crt", frozen))
