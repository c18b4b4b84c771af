"""Public names of a package imported from their modules on first use (PEP 562).

``api`` and ``api.cli`` re-export names whose modules pull in the server, the
store or the executor; a client command that imports neither must not pay for
them at start-up (bench/README.md, the start-up benchmark).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def import_on_first_use(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``where`` maps a public
    name to the module (relative to ``package``) that defines it."""
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        try:
            source = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(source, package), name)
        setattr(module, name, value)  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *getattr(module, "__all__", ())})

    return __getattr__, __dir__
