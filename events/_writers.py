"""The frame writers: one function per event class, generated once, writing its frame.

Each writes the whole ``{"type":"event",...}`` frame of one class with an
f-string, each field per its rule's wire kind (``_rules``); a value not of the
type its field is written for makes it return None, and the codec's converter
and JSON encoder write that event instead (``EventCodec.encode``).
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from ._codegen import generate
from ._models import Event
from ._rules import Rule, WireKind, rules_of
from ._times import format_time

#: Writes one event class's whole frame: ``(event, seq, second text, microsecond)``;
#: None when a value is not of the type it was written for (then the converter does it).
Writer = Callable[[Any, int, str, int], "str | None"]

# How each kind of field is written (an f-string replacement field over the
# value ``{v}``) and what it must be for that ("" when its rule guarantees it).
_NON_OPTIONAL: dict[WireKind, tuple[str, str]] = {
    "text": ("_enc({v})", ""),
    "long_text": ("_enc_long({v})", ""),
    "choice": ("_enc({v})", "type({v}) is str"),
    "int": ("{v}", "type({v}) is int"),
    "float": ("{v}!r", "type({v}) is float"),
    "bool": ('"true" if {v} else "false"', ""),
    "time": ("_quoted_time({v})", "type({v}) is _datetime"),
}


def _write_field(name: str, rule: Rule) -> tuple[str, str]:
    value, test = _NON_OPTIONAL[rule.kind]
    value, test = value.format(v=name), test.format(v=name)
    if not rule.optional:
        return value, test
    if rule.kind in ("int", "float"):
        value = f"_repr({name})"
    return f'"null" if {name} is None else {value}', f"({name} is None or {test})" if test else ""


def _static(text: str) -> str:
    """``text`` as the literal part of a single-quoted f-string."""
    if "'" in text or "\\" in text:
        raise ValueError(f"cannot write {text!r} into a writer")  # never: JSON of identifiers
    return text.replace("{", "{{").replace("}", "}}")


def writer_for(cls: type[Event]) -> Writer:
    """The frame writer of ``cls``, generated once: each field written per its rule.

    A value of exactly the type its field is written for (``type(v) is int``:
    not a bool, an IntEnum or an int in a float field) is written here, the
    text ``json.dumps`` gives for it; anything else makes the writer return
    None and the converter and JSON encoder write the event.  An f-string: in
    CPython 3.11 it costs less than the same ``%`` template
    (bench/HISTORY.md#generated-checks-and-frame-writers-per-event-class-kept).
    """
    pairs = [(a, r) for a, r in rules_of(cls) if a.name != "task_id"]
    head = f'{{"type":"event","event":{json.dumps(cls.event_name)},"task_id":'
    parts = [_static(head), "{_enc(task_id)}", _static(',"seq":'), "{seq}"]
    parts += [_static(',"time":"'), "{second}{micro:06d}", _static('Z","data":{')]
    tests = []
    for index, (attribute, rule) in enumerate(pairs):
        value, test = _write_field(attribute.name, rule)
        key = ("," if index else "") + json.dumps(attribute.name) + ":"
        parts += [_static(key), f"{{{value}}}"]
        if test:
            tests.append(test)
    parts.append(_static("}}"))
    lines = ["def write(event, seq, second, micro):", "    task_id = event.task_id"]
    lines += [f"    {attribute.name} = event.{attribute.name}" for attribute, _ in pairs]
    lines.append(f"    if {' and '.join(tests) or 'True'}:")
    lines.append(f"        return f'{''.join(parts)}'")
    lines.append("    return None")
    namespace: dict[str, Any] = {
        "_enc": encode_str,
        "_enc_long": _encode_long_text,
        "_repr": repr,
        "_quoted_time": _quoted_time,
        "_datetime": datetime,
    }
    write: Writer = generate(lines, "write", what=f"writer of {cls.__name__}", namespace=namespace)
    return write


def _quoted_time(moment: datetime) -> str:
    return f'"{format_time(moment)}"'


encode_str = json.encoder.encode_basestring_ascii
_encode_json_utf8 = msgspec.json.Encoder().encode
# Below this many characters the check costs more than msgspec saves.
_LONG_FROM = 512


def _encode_long_text(text: str) -> str:
    """``encode_str(text)``, for long ASCII text faster (through msgspec).

    On ASCII text msgspec writes what ``json.dumps`` writes (the same short
    escapes, ``\\u00XX`` in lower case for other control characters) except for
    DEL, which ``json.dumps`` escapes and msgspec does not: text with DEL, or
    not ASCII, goes the ``json`` way.  Packed output lines (task_output, up to
    4,096 characters) were a large share of an output event's cost
    (bench/HISTORY.md#output-text-through-msgspec-kept).
    """
    if len(text) >= _LONG_FROM and text.isascii() and "\x7f" not in text:
        return _encode_json_utf8(text).decode("ascii")
    return encode_str(text)
