"""engine.tensorboard: the run's epoch rows and stage results as TensorBoard scalars."""

import pytest

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer


def test_curves_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = write_mnist_folder(tmp_path / "m", n_train_per_class=[20] * 10, n_test_per_class=3)
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.profile=none", "model.arch=resnet8",
                             "engine.threads=2", "engine.progress=false", "eval.plots=false", "engine.tensorboard=true",
                             "stages=[{method: ce, name: s1, epochs: 2, batch_size: 64}, {method: crt, name: s2, epochs: 1, batch_size: 64}]"])
    final = Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    ev = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    ev.Reload()
    tags = set(ev.Tags()["scalars"])
    assert {"s1/loss", "s1/lr", "s1/grad_norm", "s2/loss", "s1/test_overall", "s2/test_tail"} <= tags
    assert [e.step for e in ev.Scalars("s1/loss")] == [1, 2] and [e.step for e in ev.Scalars("s2/loss")] == [3]
    assert ev.Scalars("s2/test_overall")[0].value == pytest.approx(final["overall"], abs=1e-4)
