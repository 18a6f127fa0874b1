"""Property-based: whatever YAML a user writes, loading it ends in a RunConfig or in one
LongtailError naming the problem — never another exception."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtail.config import RunConfig, load_config
from longtail.errors import LongtailError

KEYS = ["name", "seed", "data", "model", "stages", "engine", "eval", "augment", "start_stage", "dataset", "epochs",
        "imbalance_factor", "method", "sampler", "lr", "optimizer", "schedule", "bogus", "val_per_class", "ratio"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["ce", "crt", "cosine", "sgd", "instance", "exponential", "nan"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                      max_leaves=20)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_random_configs_load_or_fail_cleanly(tmp_path, doc):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(doc))
    try:
        cfg = load_config(p)
    except LongtailError as e:
        assert "config" in str(e) or "fix:" in str(e)
        return
    assert isinstance(cfg, RunConfig)
    assert cfg.data.imbalance_factor >= 1 and all(s.epochs >= 0 for s in cfg.stages)
