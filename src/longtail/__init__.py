"""longtail: long-tailed visual recognition on one engine.

The package is grouped by what the data passes through:
``data`` -> ``models`` -> ``losses`` / ``methods`` -> ``engine`` -> ``evaluation`` -> ``cli``.
"""

from longtail.errors import LongtailError

__version__ = "0.1.0"
__all__ = ["LongtailError", "__version__", "load", "train"]


def __getattr__(name):  # longtail.train / longtail.load without importing torch for `longtail --help`
    if name in ("train", "load"):
        from longtail import api

        return getattr(api, name)
    raise AttributeError(f"module 'longtail' has no attribute {name!r}")
