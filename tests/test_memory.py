"""Memory: gradient accumulation (stage.accumulate) gives the whole batch's gradient, and
activation checkpointing (model.checkpointing) gives the same gradients and BatchNorm
statistics while keeping far fewer activations."""

import pytest
import torch

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError
from longtail.models import build_model
from longtail.models.checkpointing import enable_checkpointing


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``fn`` runs."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total[0], out


@pytest.mark.parametrize("arch", ["resnet8", "resnet50"])
def test_checkpointing_keeps_gradients_and_statistics_with_fewer_activations(arch):
    size = 16 if arch == "resnet8" else 64
    torch.manual_seed(0)
    plain = build_model(arch, 5, 3)
    ckpt = build_model(arch, 5, 3)
    ckpt.load_state_dict(plain.state_dict())
    assert enable_checkpointing(ckpt.backbone) == (3 if arch == "resnet8" else 16)
    assert ckpt.state_dict().keys() == plain.state_dict().keys()
    x, y = torch.randn(6, 3, size, size), torch.arange(6) % 5
    kept = {}
    for name, m in (("plain", plain), ("ckpt", ckpt)):
        m.train()
        kept[name], logits = _saved_bytes(lambda m=m: m(x))
        torch.nn.functional.cross_entropy(logits, y).backward()
    assert kept["ckpt"] < 0.35 * kept["plain"], kept
    for (n, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), n
    for (n, a), b in zip(plain.named_buffers(), ckpt.buffers()):  # BN statistics updated once, not twice
        assert torch.equal(a, b), n
    ckpt.eval()
    with torch.no_grad():  # evaluation runs the blocks as they are
        assert torch.allclose(ckpt(x), plain.eval()(x), atol=1e-5)


def test_compiled_checkpointing_has_no_graph_breaks_and_the_same_results():
    """torch.compile traces the checkpointed blocks whole (a Python list mutated in each block's
    forward broke the graph at every block), and the traced recomputation updates BatchNorm's
    statistics once, as eager checkpointing does."""
    import torch._dynamo

    torch.manual_seed(0)
    plain, ckpt, traced = (build_model("resnet32", 5, 1).train() for _ in range(3))
    for m in (ckpt, traced):
        m.load_state_dict(plain.state_dict())
        enable_checkpointing(m.backbone)
    x = torch.randn(4, 1, 16, 16)
    assert torch._dynamo.explain(lambda x: traced.backbone(x).sum())(x).graph_break_count == 0  # (it runs the model)
    torch._dynamo.reset()
    plain(x).sum().backward()
    torch.compile(ckpt, backend="aot_eager")(x).sum().backward()  # AOTAutograd's tracing, eager kernels
    for (n, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), n
    for (n, a), b in zip(plain.named_buffers(), ckpt.buffers()):
        assert torch.equal(a, b), n


def test_checkpointing_needs_blocks():
    with pytest.raises(LongtailError, match="no blocks"):
        enable_checkpointing(torch.nn.Conv2d(3, 3, 3))


def test_accumulation_gives_the_whole_batch_gradient(tmp_path):
    """A classifier stage over a frozen backbone with frozen BatchNorm (so no statistic depends
    on the batch): 4 micro-batches a step must train the head as one batch does."""
    root = write_mnist_folder(tmp_path / "mnist", n_train_per_class=[20] * 10, n_test_per_class=2)
    heads, logs = [], []
    for n in (1, 4):
        cfg = load_config(None, [
            "data.dataset=mnist", f"data.root={root}", "data.profile=none", "model.arch=resnet8", "engine.threads=2",
            "engine.progress=false", "eval.plots=false", "augment.flip=false", "augment.crop_padding=0",
            "stages=[{method: crt, epochs: 2, batch_size: 48, backbone_bn: frozen, "
            f"accumulate: {n}, optimizer: {{lr: 0.5, momentum: 0.9}}}}]"])
        t = Trainer(cfg, tmp_path / f"run{n}", log=logs.append)
        t.run()
        heads.append(torch.load(tmp_path / f"run{n}" / "model.pt", weights_only=True))
    for k in heads[0]:
        assert torch.allclose(heads[0][k].float(), heads[1][k].float(), rtol=1e-4, atol=1e-6), k
    assert any("4 micro-batches of 12 images a step" in m for m in logs)


def test_accumulation_must_divide_the_batch():
    with pytest.raises(LongtailError, match="must divide batch_size 48"):
        load_config(None, ["stages=[{method: ce, batch_size: 48, accumulate: 5}]"])
