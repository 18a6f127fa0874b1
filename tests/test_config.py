from pathlib import Path

import pytest

from longtail.config import dump_config, load_config
from longtail.errors import LongtailError


def test_unknown_key_lists_valid_keys_and_suggests(tmp_path):
    (tmp_path / "c.yaml").write_text("data:\n  imbalance: 10\n")
    with pytest.raises(LongtailError) as e:
        load_config(tmp_path / "c.yaml")
    msg = str(e.value)
    assert "unknown key 'data.imbalance'" in msg and "imbalance_factor" in msg and "dataset" in msg


@pytest.mark.parametrize("override,match", [
    ("stages.0.epochs=-2", "stages.0.epochs"),
    ("data.imbalance_factor=0.5", "imbalance_factor"),
    ("model.head=round", "one of"),
    ("stages.0.sampler=weird", "sampler"),
    ("seed=abc", "must be int"),
    ("stages.3.epochs=1", "not an index"),
    ("augment.strength=3", "augment.strength"),
    ("augment.crop_scale=[0.5, 0.2]", "crop_scale"),
    ("stages.0.augment={polcy: simclr}", "(?s)unknown key 'stages.0.augment.polcy'.*did you mean 'policy'"),
    ("stages.0.augment={policy: autoaugment}", "one of"),
])
def test_bad_values_name_the_key(override, match):
    with pytest.raises(LongtailError, match=match):
        load_config(None, [override])


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config("configs/demo.yaml", ["stages.1.epochs=3", "data.imbalance_factor=50"])
    assert cfg.stages[1].epochs == 3 and cfg.data.imbalance_factor == 50.0 and cfg.stages[1].method == "crt"
    (tmp_path / "r.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "r.yaml") == cfg


def test_a_stage_can_bring_its_own_augmentation(tmp_path):
    cfg = load_config(None, ["stages=[{method: bns, augment: {policy: simclr, strength: 2}}, {method: crt, augment: false}, {method: ce}]"])
    own, off, run = (s.augment for s in cfg.stages)
    assert own.policy == "simclr" and own.strength == 2.0 and own.crop_scale == [0.08, 1.0] and own.blur
    assert off is False and run is True
    (tmp_path / "r.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "r.yaml") == cfg


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(LongtailError, match="not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("data: [1, 2\n")
    with pytest.raises(LongtailError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("path", sorted(Path("configs").rglob("*.yaml")), ids=lambda p: str(p))
def test_every_shipped_config_loads_and_names_real_methods(path):
    """Configs for data we do not have here (CIFAR, ImageNet-LT) cannot train in the tests;
    they must at least validate and name registered methods and plug-ins."""
    from longtail.engine.trainer import resolve_stage
    from longtail.methods.base import Plugin, method_class, split_method

    cfg = load_config(path)
    for i, stage in enumerate(cfg.stages):
        resolve_stage(i, stage)
        base, _, plugins = split_method(stage.method, stage.method_args)
        assert not issubclass(method_class(base), Plugin)
        assert all(issubclass(method_class(p), Plugin) for p, _ in plugins)


def test_overrides_reach_stages_by_name():
    from longtail.config import apply_overrides

    data = {"stages": [{"name": "stage1", "epochs": 5}, {"name": "crt", "epochs": 2}]}
    apply_overrides(data, ["stages.crt.epochs=10", "stages.0.batch_size=64"])
    assert data["stages"] == [{"name": "stage1", "epochs": 5, "batch_size": 64}, {"name": "crt", "epochs": 10}]
    with pytest.raises(LongtailError, match="'lws' is not an index .* or a name \\('stage1', 'crt'\\)"):
        apply_overrides(data, ["stages.lws.epochs=1"])


def test_config_reference_is_current():
    """docs/config.md is generated from the config dataclasses and lists every key."""
    import dataclasses
    from pathlib import Path

    from longtail.config import SECTIONS, config_reference

    doc = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert doc == config_reference(), "regenerate docs/config.md (command at its top)"
    for prefix, cls in SECTIONS:
        for f in dataclasses.fields(cls):
            key = f"{prefix}.{f.name}".lstrip(".")
            assert f"`{key}`" in doc or f.name in ("data", "model", "augment", "stages", "engine", "eval", "optimizer", "schedule"), key


def test_same_run_ignores_how_a_run_is_carried_out_and_keys_added_since():
    from longtail.config import RunConfig, same_run, to_dict

    new = load_config(None, ["stages.0.epochs=3", "data.workers=-1"])
    old = to_dict(load_config(None, ["stages.0.epochs=3", "data.workers=4", "engine.checkpoint_every=5"]))
    del old["data"]["verify"], old["stages"][0]["schedule"]["step"]  # written before these keys existed
    assert same_run(old, new) == []
    old["stages"][0]["epochs"] = 4
    assert same_run(old, new) == ["stages.0.epochs"]
    assert same_run(RunConfig(), RunConfig(seed=1)) == ["seed"]
    # a prepared copy of the images, or TensorBoard curves, change how a run is read and logged, not the run
    cached = load_config(None, ["data.cache=false", "data.cache_dir=/elsewhere", "engine.tensorboard=true"])
    assert same_run(RunConfig(), cached) == []
    assert same_run(RunConfig(), load_config(None, ["data.resize=40"])) == ["data.resize"]


def test_several_typos_are_named_together():
    from longtail.config import load_config
    from longtail.errors import LongtailError

    with pytest.raises(LongtailError) as e:
        load_config(None, ["data.rot=x", "stages.0.epoch=3", "stages.0.optimizer.learning_rate=0.1", "engine.threads=1"])
    msg = str(e.value)
    assert "3 unknown keys" in msg and "'data.rot' (did you mean 'root'?)" in msg and "'stages.0.epoch' (did you mean 'epochs'?)" in msg
    assert "'stages.0.optimizer.learning_rate'" in msg


def test_a_key_named_twice_is_refused_with_its_line(tmp_path):
    """PyYAML alone keeps the second of two equal keys silently; a config or suite file that
    names one twice is refused, the line shown."""
    from longtail.bench import load_suite

    cfg = tmp_path / "twice.yaml"
    cfg.write_text("model: {arch: resnet8}\nstages:\n  - {method: crt, sampler: class_aware, epochs: 1, sampler: class_balanced}\n")
    with pytest.raises(LongtailError, match="found the key 'sampler' twice") as e:
        load_config(cfg)
    assert "line 3" in str(e.value)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"seeds: [0]\nmethods:\n  a: {cfg}\n  a: {cfg}\n")
    with pytest.raises(LongtailError, match="found the key 'a' twice"):
        load_suite(suite)
