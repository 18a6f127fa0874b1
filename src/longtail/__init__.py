"""longtail: long-tailed visual recognition on one engine.

The package is grouped by what the data passes through:
``data`` -> ``models`` -> ``losses`` / ``methods`` -> ``engine`` -> ``evaluation`` -> ``cli``.
"""

from longtail.errors import LongtailError

__version__ = "0.1.0"
__all__ = ["LongtailError", "__version__"]
