"""Command handlers named, not imported: a command's implementation loads when it runs.

Building the parser must stay cheap (``runcast status`` starts in about the time
of importing trio and trio-websocket), so the modules that define the commands
name their handlers as ``"module:function"`` and the implementation, with the
server, the store or the executor beneath it, is imported at dispatch.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import cast

import attrs

Handler = Callable[[argparse.Namespace], int]


@attrs.frozen
class LazyHandler:
    """``module:function``, imported on the first call; an import error surfaces as is."""

    reference: str = attrs.field()

    @reference.validator
    def _check(self, _attribute: object, value: str) -> None:
        module, _, function = value.partition(":")
        if not module or not function:
            raise ValueError(f"a handler is named 'module:function', got {value!r}")

    def resolve(self) -> Handler:
        module, _, function = self.reference.partition(":")
        return cast(Handler, getattr(importlib.import_module(module), function))

    def __call__(self, args: argparse.Namespace) -> int:
        return self.resolve()(args)
