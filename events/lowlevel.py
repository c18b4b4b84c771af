"""Speed tools for runcast's own hot paths (the executor's per-task events).

Not part of the event model: what they build is exactly what the classes
build, only faster, so code outside the hot paths calls the classes.
"""

from ._rules import fast_constructor

__all__ = ["fast_constructor"]
