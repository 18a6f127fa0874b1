"""An emulated CUDA device for a CPU-only torch: the engine's GPU path, checked without a GPU.

Every tensor the code puts on "cuda" becomes an :class:`Emulated` tensor: its ``device`` is
``cuda:0``, its data a real CPU tensor, so training really runs (real numbers, data-dependent
control flow). A dispatch mode sees every op and applies eager CUDA's device rules:

- an op's tensor arguments share one device, except 0-dim CPU tensors (Python-like scalars);
- indexing a CUDA tensor with CPU indices is allowed (torch copies them to the GPU, which the
  host waits for: a sync), indexing a CPU tensor with CUDA indices is an error;
- copies may cross devices: host→device is queued without waiting only from pinned memory with
  ``non_blocking=True``; device→host always waits.

It records each breach of those rules (a **mismatch**: this code would raise on a GPU) and each
point where the host waits for the device (a **sync**: ``.item()``, ``bool(t)``, ``.tolist()``,
a device→host or pageable host→device copy, CPU indices, and the kernels that read a size back:
``nonzero``, boolean masks, ``unique``, ...), each with the first line of the project that made
it. Not modelled: speed, memory, NCCL, CUDA graphs, ``torch.compile`` on CUDA.

Load before torch: ``import emucuda`` loads the shim (``LONGTAIL_CUDA_SHIM``, built by the tests
from shim.cpp) that lets autograd and device guards accept CUDA tensors; :func:`install` starts
the emulation.
"""

from __future__ import annotations

import ctypes
import os
import traceback
from collections import Counter

ctypes.CDLL(os.environ["LONGTAIL_CUDA_SHIM"], mode=ctypes.RTLD_GLOBAL)

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten, tree_map  # noqa: E402

aten = torch.ops.aten
GPU = torch.device("cuda", 0)
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")

# kernels whose CUDA implementation copies a size or value back to the host before returning
READS_BACK = {aten.nonzero.default: "nonzero", aten.masked_select.default: "masked_select",
              aten._unique2.default: "unique", aten.unique_dim.default: "unique", aten._unique.default: "unique",
              aten.unique_consecutive.default: "unique", aten.bincount.default: "bincount",
              aten.equal.default: "equal", aten.is_nonzero.default: "is_nonzero", aten.argwhere.default: "argwhere"}
COPIES = {aten._to_copy.default, aten.copy_.default, aten._copy_from.default, aten._copy_from_and_resize.default}
INDEXING = {aten.index.Tensor, aten._unsafe_index.Tensor, aten.index_put_.default, aten.index_put.default,
            aten._index_put_impl_.default, aten._unsafe_index_put.default}
WRITES = {aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default, aten._unsafe_index_put.default}


def project_line(depth: int = 1) -> str:
    """The innermost ``depth`` frames of the call stack that are longtail's source."""
    out = [f"{os.path.relpath(f.filename, SRC)}:{f.lineno}" for f in reversed(traceback.extract_stack())
           if f.filename.startswith(SRC)]
    return " < ".join(out[:depth]) or "?"


class Log:
    """What the emulation saw: mismatches, syncs (with their lines), op counts, and the indices
    into ``syncs`` / ``ops`` where each training step began (``marks``)."""

    def __init__(self):
        self.mismatches: list[tuple[str, str, str]] = []
        self.syncs: list[tuple[str, str, str]] = []  # (what, op, line)
        self.ops = 0
        # ops by the part of a step that issued them ("backbone": the backbone's forward and
        # backward, what CUDA graphs would replay; the driver sets the region)
        self.region = "engine"
        self.region_ops: dict[str, int] = {}
        self.marks: list[tuple[str, int, int, dict]] = []  # (stage kind, len(syncs), ops, region_ops) at each step's start

    def sync(self, what: str, op) -> None:
        self.syncs.append((what, str(op), project_line(2)))

    def mismatch(self, what: str, op) -> None:
        self.mismatches.append((what, str(op), project_line(4)))


class Emulated(torch.Tensor):
    """A CUDA tensor whose data (``.cpu_data``) lives on the CPU."""

    cpu_data: torch.Tensor

    @staticmethod
    def __new__(cls, data: torch.Tensor):
        t = torch.Tensor._make_wrapper_subclass(cls, data.size(), strides=data.stride(), storage_offset=data.storage_offset(),
                                                dtype=data.dtype, layout=data.layout, device=GPU, requires_grad=False)
        t.cpu_data = data
        return t

    __torch_function__ = torch._C._disabled_torch_function_impl

    def tolist(self):
        LOG.sync("tolist", "Tensor.tolist")
        return self.cpu_data.tolist()

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.")

    __array__ = numpy

    def __repr__(self, *args, **kwargs):
        LOG.sync("repr", "Tensor.__repr__")
        return f"Emulated({self.cpu_data!r}, device='cuda:0')"

    def __format__(self, spec):
        return format(self.item(), spec) if self.dim() == 0 else repr(self)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        with MODE:  # an op outside the mode's thread (autograd's engine): apply the same rules
            return func(*args, **(kwargs or {}))


def _host(t) -> bool:
    return isinstance(t, torch.Tensor) and not isinstance(t, Emulated) and t.device.type == "cpu"


def _data(t):
    return t.cpu_data if isinstance(t, Emulated) else t


def _to_gpu(device) -> bool:
    return device is not None and torch.device(device).type == "cuda"


class CudaRules(TorchDispatchMode):
    def __init__(self, log: Log):
        super().__init__()
        self.log = log
        self.pinned: dict[int, torch.Tensor] = {}

    def is_pinned(self, t) -> bool:
        return _host(t) and t.untyped_storage().data_ptr() in self.pinned

    def pin(self, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        self.pinned[out.untyped_storage().data_ptr()] = out  # kept alive, so the address stays its own
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten.is_pinned.default:
            return self.is_pinned(args[0])
        if func is aten._pin_memory.default:
            return self.pin(args[0])
        flat, _ = tree_flatten((args, kwargs))
        gpu = [a for a in flat if isinstance(a, Emulated)]
        made_on_gpu = _to_gpu(kwargs.get("device"))
        if not gpu and not made_on_gpu:
            return func(*args, **kwargs)
        self.log.ops += 1
        self.log.region_ops[self.log.region] = self.log.region_ops.get(self.log.region, 0) + 1
        if func is aten._local_scalar_dense.default:
            self.log.sync("item", func)
            return func(args[0].cpu_data)
        if func in COPIES:
            return self._copy(func, args, kwargs)
        if func in INDEXING:
            self._check_indexing(func, args)
        else:
            host = [a for a in flat if _host(a) and a.dim() > 0]
            if gpu and host:
                self.log.mismatch(f"cuda and cpu tensors {[tuple(a.shape) for a in host[:3]]}", func)
            if func in READS_BACK:
                self.log.sync(READS_BACK[func], func)
            if func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is None:
                self.log.sync("repeat_interleave without output_size", func)
        kw = tree_map(_data, kwargs)
        if made_on_gpu:
            kw["device"] = torch.device("cpu")
        if kw.get("pin_memory") is not None:
            kw.pop("pin_memory")
        out = func(*tree_map(_data, args), **kw)
        returns = func._schema.returns
        if len(returns) == 1 and returns[0].alias_info is not None and returns[0].alias_info.is_write:
            for i, a in enumerate(func._schema.arguments):  # in-place / out=: the argument itself
                if a.alias_info is not None and a.alias_info.is_write:
                    return args[i] if i < len(args) and not a.kwarg_only else kwargs.get(a.name)
        on_gpu = isinstance(args[0], Emulated) if func in INDEXING else True
        return tree_map(lambda t: Emulated(t) if on_gpu and _host(t) else t, out)

    def _check_indexing(self, func, args):
        target, indices = args[0], [i for i in args[1] if isinstance(i, torch.Tensor)]
        if isinstance(target, Emulated):
            for i in indices:
                if _host(i):
                    self.log.sync("cpu indices into a cuda tensor (copied to the device inside the op)", func)
                elif i.dtype in (torch.bool, torch.uint8):
                    self.log.sync("boolean mask index (nonzero inside the op)", func)
            if func in WRITES and _host(args[2]) and args[2].dim() > 0:
                self.log.mismatch("index_put of cpu values into a cuda tensor", func)
        elif any(isinstance(i, Emulated) for i in indices) or (func in WRITES and isinstance(args[2], Emulated)):
            self.log.mismatch("a cpu tensor indexed with (or written from) cuda tensors", func)

    def _copy(self, func, args, kwargs):
        if func is aten._to_copy.default:
            src, device = args[0], kwargs.get("device")
            to_gpu = _to_gpu(device) if device is not None else isinstance(src, Emulated)
            if _host(src) and to_gpu and not (kwargs.get("non_blocking") and self.is_pinned(src)):
                self.log.sync("host-to-device copy from pageable memory or blocking", func)
            elif isinstance(src, Emulated) and not to_gpu:
                self.log.sync("device-to-host copy", func)
            kw = {k: v for k, v in kwargs.items() if k not in ("pin_memory",)}
            if device is not None:
                kw["device"] = torch.device("cpu")
            out = func(_data(src), *args[1:], **kw)
            out = out.clone() if out is _data(src) else out
            return Emulated(out) if to_gpu else out
        dst, src = args[0], args[1]
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        if isinstance(dst, Emulated) and _host(src) and src.dim() > 0 and not (non_blocking and self.is_pinned(src)):
            self.log.sync("host-to-device copy_ from pageable memory or blocking", func)
        elif _host(dst) and isinstance(src, Emulated):
            self.log.sync("device-to-host copy_", func)
        func(_data(dst), _data(src), *args[2:], **kwargs)
        return dst


LOG = Log()
MODE = CudaRules(LOG)


def _patch_torch() -> None:
    cuda = torch.cuda
    cuda.is_available = lambda: True
    cuda.is_bf16_supported = lambda *a, **k: True
    cuda.device_count = lambda: 1
    cuda.current_device = lambda: 0
    cuda.get_device_name = lambda *a, **k: "emulated CUDA device"
    cuda.get_device_capability = lambda *a, **k: (9, 0)
    cuda.set_device = lambda *a, **k: None
    cuda._lazy_init = lambda: None
    cuda.synchronize = lambda *a, **k: LOG.sync("torch.cuda.synchronize", "synchronize")
    torch.Tensor.pin_memory = lambda self, *a, **k: MODE.pin(self)
    torch.Tensor.is_pinned = lambda self, *a, **k: MODE.is_pinned(self)
    save, load = torch.save, torch.load

    def save_on_host(obj, f, *a, **k):  # torch.save copies CUDA tensors to the host
        def host(t):
            if isinstance(t, Emulated):
                LOG.sync("torch.save of a cuda tensor", "torch.save")
                return t.cpu_data.clone()
            return t
        return save(tree_map(host, obj), f, *a, **k)

    def load_to_device(f, map_location=None, **kw):  # map_location "cuda:0": read on the host, then copy
        if map_location is not None and not callable(map_location) and _to_gpu(map_location):
            obj = load(f, map_location="cpu", **kw)
            return tree_map(lambda t: t.to(GPU) if isinstance(t, torch.Tensor) else t, obj)
        return load(f, map_location=map_location, **kw)

    torch.save, torch.load = save_on_host, load_to_device


def install() -> Log:
    """Start the emulation in this process (for good: run it in a process of its own)."""
    _patch_torch()
    # module.to("cuda") replaces each Parameter instead of swapping its data in place (a wrapper's
    # data cannot be swapped into a plain tensor)
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    # torch.tensor(..., device="cuda") builds on the host, then copies where the mode sees it
    torch._C._set_only_lift_cpu_tensors(True)
    MODE.__enter__()
    return LOG
