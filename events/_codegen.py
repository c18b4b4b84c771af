"""Functions written as source at import time, with their source kept for tracebacks.

The event checks, the fast constructors and the frame writers are generated
once per class (see ``_rules`` and ``_wire``).  Python shows a frame of
generated code as a file name with no line unless the source is in
:mod:`linecache`, so each generated function's source is registered there under
a name of its own, as attrs and cattrs do: a traceback through a failing check
then shows the generated line that raised.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Iterable
from typing import Any

_serial = itertools.count(1)


def generate(lines: Iterable[str], function: str, *, what: str, namespace: dict[str, Any]) -> Any:
    """Compile ``lines`` (one ``def function``) in ``namespace``; return the function.

    ``what`` names the code in its file name (``<runcast checks of TaskUsage #3>``);
    the serial number keeps two generations for one class apart in the cache.
    """
    source = "\n".join(lines) + "\n"
    filename = f"<runcast {what} #{next(_serial)}>"
    exec(compile(source, filename, "exec"), namespace)
    # mtime None: linecache.checkcache leaves the entry alone (no file to stat).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[function]
