"""bench/'s modules import each other without a cycle, function-level imports included.

import-linter's contracts cover the product's packages, not bench/, so this reads
bench/'s import graph with grimp (import-linter's own graph builder), which sees
every import statement: top-level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One chain per direct import ``a -> b`` that ``b`` leads back to ``a``."""
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append((importer, *back))
    return cycles


def test_bench_modules_import_each_other_without_a_cycle() -> None:
    graph = grimp.build_graph("bench", cache_dir=None)

    assert _cycles(graph) == []


def test_the_check_finds_a_cycle_through_a_function_level_import() -> None:
    graph = grimp.build_graph("bench", cache_dir=None)
    # What bench/ had: the servers took shared pieces from the module that starts them.
    graph.add_import(importer="bench._raw_server", imported="bench._fanout_server")

    assert ("bench._raw_server", "bench._fanout_server", "bench._raw_server") in _cycles(graph)
