"""docs/extending.md's worked example, run as written: the module from its first code block and
the stage from its YAML block train a tiny run."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


def test_the_documented_method_and_plugin_train(tmp_path, monkeypatch):
    blocks = re.findall(r"```(\w*)\n(.*?)```", DOC.read_text(), re.S)
    code = next(b for lang, b in blocks if lang == "python")
    stage = yaml.safe_load(next(b for lang, b in blocks if lang == "yaml"))["stages"][0]
    (tmp_path / "my_methods.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    root = write_mnist_folder(tmp_path / "data")
    stage = {**stage, "epochs": 1, "batch_size": 32}
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
                             "engine.progress=false", "eval.plots=false", f"stages=[{yaml.safe_dump(stage, default_flow_style=True).strip()}]"])
    m = Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    assert 0 <= m["overall"] <= 100
    sys.modules.pop("my_methods", None)


@pytest.mark.parametrize("method,message", [("no_such_module:X", "cannot import module"),
                                            ("json:dumps", "has no Method subclass")])
def test_a_wrong_user_method_is_named(tmp_path, method, message):
    with pytest.raises(LongtailError, match=message):
        Trainer(load_config(None, [f"stages=[{{method: '{method}', epochs: 1}}]", f"data.root={tmp_path}"]), tmp_path / "r")
