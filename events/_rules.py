"""Field rules of the event classes, checked by one generated function per class.

Every event is validated when built, and the executor builds three or more per
task.  An attrs validator per field is a Python call per field (ten for a
``task_usage``), so each field carries a :class:`Rule` in its metadata instead,
and :func:`install_checks` writes one ``__attrs_post_init__`` per class that
tests every field inline (``fast``, an expression).  Only when that test fails
does it run the fields' ``slow`` checks in field order, as attrs would have
run validators, to raise the error naming the first bad field; a value the fast
test is too strict for (a ``str`` subclass, an int in a float field) passes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import attrs

from ._codegen import generate
from ._exceptions import EventValidationError

SESSION_TOPIC: Final = "*"
#: The longest task id, wherever one is taken (events, job files, WebSocket messages).
MAX_TASK_ID: Final = 256
RULE: Final = "runcast_rule"
_C = TypeVar("_C", bound=type)
_E = TypeVar("_E")

Check = Callable[[object, "attrs.Attribute[Any]", Any], None]
#: How the wire encoder writes a value the rule admits (``_wire._writer``).
#: A bounded text whose limit is above this is written by the wire's long-text
#: path (``_wire._encode_long_text``): task_output's packed lines.
LONG_TEXT = 2048
WireKind = Literal["text", "long_text", "choice", "int", "float", "bool", "time"]


@attrs.frozen
class Rule:
    """A field's check: ``fast`` (``{v}`` is the value) is True for a valid value, fast.

    ``slow`` raises :class:`EventValidationError` naming the field for an
    invalid one.  ``fast`` may read other fields by name (earlier ones are
    already checked) and the names in ``constants``.
    """

    fast: str
    slow: Check
    kind: WireKind
    optional: bool = False
    constants: tuple[tuple[str, object], ...] = ()


def _non_negative_int(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventValidationError(f"{attribute.name} must be an int, got {value!r}")
    if value < 0:
        raise EventValidationError(f"{attribute.name} must be >= 0, got {value}")


def _positive_int(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _non_negative_int(inst, attribute, value)
    if value == 0:
        raise EventValidationError(f"{attribute.name} must be >= 1, got 0")


def _int(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int):
        raise EventValidationError(f"{attribute.name} must be an int, got {value!r}")


def _bool(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise EventValidationError(f"{attribute.name} must be a bool, got {value!r}")


def _non_negative_float(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventValidationError(f"{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise EventValidationError(f"{attribute.name} must be finite and >= 0, got {value}")


def _task_id(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_TASK_ID:
        raise EventValidationError(
            f"{attribute.name} must be a non-empty string of <= {MAX_TASK_ID} chars"
        )
    if value == SESSION_TOPIC:
        raise EventValidationError(f"{attribute.name} '*' is reserved for session events")


def _session_topic(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value != SESSION_TOPIC:
        raise EventValidationError(f"{attribute.name} of a session event must be '*'")


def _aware(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise EventValidationError(f"{attribute.name} must be a timezone-aware datetime")


COUNT: Final = Rule("type({v}) is int and {v} >= 0", _non_negative_int, "int")
POSITIVE: Final = Rule("type({v}) is int and {v} >= 1", _positive_int, "int")
INT: Final = Rule("type({v}) is int", _int, "int")
BOOL: Final = Rule("({v} is True or {v} is False)", _bool, "bool")
# A finite float >= 0: NaN fails both comparisons; an int (allowed) takes the slow check.
NON_NEGATIVE: Final = Rule(
    "type({v}) is float and 0.0 <= {v} < _INF",
    _non_negative_float,
    "float",
    constants=(("_INF", math.inf),),
)
#: Dollars, and seconds: both are finite floats >= 0, named for what the field holds.
MONEY: Final = NON_NEGATIVE
SECONDS: Final = NON_NEGATIVE
#: A budget's warning threshold, a fraction of the budget.
FRACTION: Final = NON_NEGATIVE
TASK_ID: Final = Rule(
    'type({v}) is str and 0 < len({v}) <= _MAX_TASK_ID and {v} != "*"',
    _task_id,
    "text",
    constants=(("_MAX_TASK_ID", MAX_TASK_ID),),
)
SESSION: Final = Rule('{v} == "*"', _session_topic, "text")
AWARE_TIME: Final = Rule(
    "{v} is None or (type({v}) is _datetime and {v}.tzinfo is not None)",
    _aware,
    "time",
    optional=True,
    constants=(("_datetime", datetime),),
)


def bounded_text(limit: int) -> Rule:
    """A string of at most ``limit`` characters."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str):
            raise EventValidationError(f"{attribute.name} must be a string, got {value!r}")
        if len(value) > limit:
            raise EventValidationError(f"{attribute.name} is longer than {limit} characters")

    kind: WireKind = "long_text" if limit > LONG_TEXT else "text"
    return Rule(f"type({{v}}) is str and len({{v}}) <= {limit:d}", check, kind)


def one_of(choices: frozenset[str], name: str) -> Rule:
    """One of ``choices``, known to generated code as ``name``."""

    def choice(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise EventValidationError(
                f"{attribute.name} must be one of {sorted(choices)}, got {value!r}"
            )

    return Rule(f"{{v}} in {name}", choice, "choice", constants=((name, choices),))


def optional(rule: Rule) -> Rule:
    """``rule``, or None."""

    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            rule.slow(inst, attribute, value)

    return attrs.evolve(rule, fast=f"({{v}} is None or ({rule.fast}))", slow=check, optional=True)


def _line_count(inst: Any, _attribute: object, value: int) -> None:
    if inst.line.count("\n") + 1 != value:
        raise EventValidationError(
            f"lines must be the number of lines in line ({inst.line.count(chr(10)) + 1}), "
            f"got {value}"
        )


#: ``lines`` of a task_output: a positive int matching the newlines of ``line``.
def _positive_line_count(inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    _positive_int(inst, attribute, value)
    _line_count(inst, attribute, value)


LINE_COUNT: Final = Rule(
    'type({v}) is int and {v} >= 1 and line.count("\\n") + 1 == {v}',
    _positive_line_count,
    "int",
)


def checked(rule: Rule) -> dict[str, Rule]:
    """The metadata of an attrs field checked by ``rule`` (see :func:`install_checks`)."""
    return {RULE: rule}


def rules_of(cls: type) -> Iterable[tuple[attrs.Attribute[Any], Rule]]:
    for attribute in attrs.fields(cls):
        rule = attribute.metadata.get(RULE)
        if rule is not None:
            yield attribute, rule


def _check_slowly(inst: object) -> None:
    for attribute, rule in rules_of(type(inst)):
        rule.slow(inst, attribute, getattr(inst, attribute.name))


def install_checks(cls: _C) -> _C:
    """Give ``cls`` (an attrs class) the ``__attrs_post_init__`` checking its rules.

    attrs calls ``__attrs_post_init__`` if the class had one when it was built
    (the base ``Event`` does), looking it up at each call, so it can be set here.
    One the class defined itself runs after the checks.
    """
    pairs = list(rules_of(cls))
    namespace: dict[str, object] = {"_check_slowly": _check_slowly}
    for _, rule in pairs:
        namespace.update(rule.constants)
    after = cls.__dict__.get("__attrs_post_init__")
    lines = ["def __attrs_post_init__(self):"]
    lines += [f"    {attribute.name} = self.{attribute.name}" for attribute, _ in pairs]
    tests = " and ".join(f"({rule.fast.format(v=attribute.name)})" for attribute, rule in pairs)
    lines.append(f"    if not ({tests or 'True'}):")
    lines.append("        _check_slowly(self)")
    if after is not None:
        namespace["_after"] = after
        lines.append("    _after(self)")
    check = generate(
        lines, "__attrs_post_init__", what=f"checks of {cls.__name__}", namespace=namespace
    )
    # setattr: mypy knows no such attribute on a type variable's class.
    setattr(cls, "__attrs_post_init__", check)  # noqa: B010
    return cls


def _slot(cls: type, name: str) -> Any:
    """The slot descriptor that holds field ``name`` of instances of ``cls``."""
    for klass in cls.__mro__:
        descriptor = klass.__dict__.get(name)
        if descriptor is not None:
            return descriptor
    raise TypeError(f"{cls.__name__} has no slot {name!r}")  # never: attrs slotted classes


def fast_constructor(cls: Callable[..., _E]) -> Callable[..., _E]:
    """A keyword-only constructor of ``cls`` that builds what ``cls(...)`` builds, faster.

    A frozen attrs class sets each field through ``object.__setattr__`` and then
    calls its checks, for three events per task. This writes the slots directly
    when the class's fast test passes and otherwise calls ``cls`` itself, which
    raises the error naming the field (or accepts a value the fast test is too
    strict for). Every field is a required keyword: the executor's hot paths
    pass them all. What it saves: bench/HISTORY.md#fast_constructor-kept.
    """
    assert isinstance(cls, type)
    names = [attribute.name for attribute in attrs.fields(cls)]
    pairs = list(rules_of(cls))
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": cls}
    for _, rule in pairs:
        namespace.update(rule.constants)
    for name in names:
        namespace[f"_set_{name}"] = _slot(cls, name).__set__
    arguments = ", ".join(f"{name}={name}" for name in names)
    tests = " and ".join(f"({rule.fast.format(v=attribute.name)})" for attribute, rule in pairs)
    lines = [f"def make(*, {', '.join(names)}):", f"    if not ({tests or 'True'}):"]
    lines.append(f"        return _cls({arguments})")
    # The instance's local name must not shadow a field's parameter (Published.event).
    assert "made_" not in names
    lines.append("    made_ = _new(_cls)")
    lines += [f"    _set_{name}(made_, {name})" for name in names]
    # What the class's own __attrs_post_init__ does after the checks (install_checks).
    checks = cls.__dict__.get("__attrs_post_init__")
    after = getattr(checks, "__globals__", {}).get("_after")
    if after is not None:
        namespace["_after"] = after
        lines.append("    _after(made_)")
    lines.append("    return made_")
    make: Callable[..., _E] = generate(
        lines, "make", what=f"constructor of {cls.__name__}", namespace=namespace
    )
    return make
