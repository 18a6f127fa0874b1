"""Methods: each a small object the engine calls (see :mod:`longtail.methods.base`)."""

from longtail.methods import authors_bases, baselines, bn_refresh, bns, decoupling, ipdpp, mixup, pih2t  # noqa: F401  (registers the methods)
from longtail.methods.base import METHODS, Batch, Method, Plugin, StageContext, make_method, method_class, register, split_method

__all__ = ["METHODS", "Batch", "Method", "Plugin", "StageContext", "make_method", "method_class", "register", "split_method"]
