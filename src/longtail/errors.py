"""The one exception type users see: a problem and the fix, no traceback."""


class LongtailError(Exception):
    """A user-facing error. ``str(err)`` names what is wrong and how to fix it."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")

    def __reduce__(self):  # survives pickling (errors raised in decoding workers)
        return type(self), (self.problem, self.fix)
