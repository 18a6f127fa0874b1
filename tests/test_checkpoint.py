import os
import pickle

import pytest
import torch

from longtail.engine import checkpoint as ckpt
from longtail.errors import LongtailError


def _state(v=1.0):
    return {"model": {"w": torch.full((3,), v)}, "epoch": 2, "history": [{"loss": 0.5}]}


def test_round_trip_and_previous_kept(tmp_path):
    p = tmp_path / "c.pt"
    ckpt.save_checkpoint(_state(1.0), p)
    ckpt.save_checkpoint(_state(2.0), p)
    assert ckpt.load_checkpoint(p)["model"]["w"][0] == 2.0
    assert ckpt.load_checkpoint(ckpt.previous_path(p))["model"]["w"][0] == 1.0
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    (tmp_path / "plain").write_text("")  # the permissions a plain open gives, not mkstemp's 0600
    assert os.stat(p).st_mode == os.stat(tmp_path / "plain").st_mode


def test_corruption_detected_and_fallback(tmp_path):
    p = tmp_path / "c.pt"
    ckpt.save_checkpoint(_state(1.0), p)
    ckpt.save_checkpoint(_state(2.0), p)
    raw = bytearray(p.read_bytes())
    raw[-10] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(LongtailError, match="corrupt"):
        ckpt.load_checkpoint(p)
    msgs = []
    assert ckpt.load_latest(p, log=msgs.append)["model"]["w"][0] == 1.0
    assert "falling back" in msgs[0]
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(LongtailError, match=str(p.name)):
        ckpt.load_checkpoint(p)


def test_code_running_pickle_is_refused(tmp_path):
    import hashlib

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    payload = pickle.dumps({"x": Evil()})
    p = tmp_path / "evil.pt"
    p.write_bytes(ckpt.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    with pytest.raises(LongtailError, match="refusing"):
        ckpt.load_checkpoint(p)
    assert not (tmp_path / "pwned").exists()


def test_failed_write_leaves_previous_intact(tmp_path, monkeypatch):
    p = tmp_path / "c.pt"
    ckpt.save_checkpoint(_state(1.0), p)

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(LongtailError, match="No space left"):
        ckpt.save_checkpoint(_state(2.0), p)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(p)["model"]["w"][0] == 1.0
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
