"""How every ``runcast`` command's help reads: each option says its default."""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: Defaults not worth saying: an option that is off, or has no value, unless given.
_UNSAID: tuple[object, ...] = (None, False, argparse.SUPPRESS, [], ())


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; ``(default: X)`` after each option's help
    that does not already say its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if not text or "default" in text or action.default in _UNSAID:
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text  # a required positional has no default
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """Every parser and subparser of ``runcast``: the help above, unless one asks otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("formatter_class") in (None, argparse.RawDescriptionHelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)


class VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("runcast")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        print(f"runcast {text}", file=sys.stdout)  # as argparse's own version action
        parser.exit()
