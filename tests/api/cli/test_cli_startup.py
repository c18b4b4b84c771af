"""The console script's parser is built from light modules; implementations load at dispatch."""

from __future__ import annotations

import argparse
import importlib

import pytest

import api
import api.cli
import api.cli._heap
import api.cli._main
from api.cli._lazy import LazyHandler
from api.cli._main import build_parser


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser``, sub-commands of sub-commands too."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_the_light_copies_of_defaults_agree_with_their_owners() -> None:
    from api.server import DEFAULT_HOST, DEFAULT_PORT
    from executor import ON_BUDGET

    served = build_parser().parse_args(["demo"])
    assert (served.host, served.port) == (DEFAULT_HOST, DEFAULT_PORT)
    assert tuple(api.cli._main.ON_BUDGET) == tuple(ON_BUDGET)


def test_every_lazy_handler_names_a_function_that_exists() -> None:
    handlers = [
        p._defaults["handler"] for p in _parsers(build_parser()) if "handler" in p._defaults
    ]
    lazy = [handler for handler in handlers if isinstance(handler, LazyHandler)]
    # run, demo, sessions, show, export, usage at least: the ones with heavy imports.
    assert len(lazy) >= 6
    for handler in lazy:
        assert callable(handler.resolve()), handler.reference


def test_a_missing_implementation_surfaces_as_an_import_error() -> None:
    args = argparse.Namespace()
    with pytest.raises(ModuleNotFoundError, match=r"api\.cli\._no_such_module"):
        LazyHandler("api.cli._no_such_module:run")(args)
    with pytest.raises(AttributeError, match="no_such_function"):
        LazyHandler("api.cli._store_views:no_such_function")(args)
    with pytest.raises(ValueError, match="'module:function'"):
        LazyHandler("api.cli._store_views")


@pytest.mark.parametrize("package", [api, api.cli])
def test_every_public_name_resolves_lazily(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert set(names) == set(package._WHERE)  # type: ignore[attr-defined]
    for name in names:
        value = getattr(package, name)
        where = importlib.import_module(package._WHERE[name], package.__name__)  # type: ignore[attr-defined]
        assert value is getattr(where, name)
        assert name in dir(package)
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        _ = package.nonsense  # type: ignore[attr-defined]


def test_main_settles_the_heap_with_the_real_settle_heap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(api.cli._heap, "settle_heap", lambda: calls.append("settled"))
    api.cli._main.settle_heap()
    assert calls == ["settled"]
