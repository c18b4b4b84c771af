"""spec_to_json / spec_from_json: a job file's task round-trips through the ``specs`` hash,
and a spec that is not ours is refused naming the field."""

from __future__ import annotations

import json

import pytest

from api.cluster import ClusterError, spec_from_json, spec_to_json
from executor import CommandSpec

SPECS = [
    CommandSpec(command=["python", "-c", "print(1)"], id="a"),
    CommandSpec(
        command="echo $X && sleep 1",
        shell=True,
        id="b",
        name="shell one",
        cwd="/tmp",
        env={"X": "1", "EMPTY": ""},
        timeout=2.5,
        retries=3,
        priority=-2,
        model="claude-sonnet-4",
        provider="anthropic",
    ),
    CommandSpec(command=["true"]),
]


@pytest.mark.parametrize("spec", SPECS, ids=["argv", "everything", "bare"])
def test_a_spec_round_trips(spec: CommandSpec) -> None:
    text = spec_to_json(spec)
    assert spec_from_json(text) == spec
    assert spec_to_json(spec_from_json(text)) == text


def test_the_json_is_compact_and_stable() -> None:
    text = spec_to_json(SPECS[0])
    assert " " not in text.replace("print(1)", "")
    assert list(json.loads(text)) == sorted(json.loads(text))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "task spec: not JSON"),
        ("[1, 2]", "task spec: expected a JSON object"),
        ('{"command": 5}', "$.command"),
        ('{"command": ["a"], "surprise": 1}', "extra fields found (surprise)"),
        ('{"command": ["a"], "retries": -1}', "retries: must be >= 0, got -1"),
        ('{"command": "echo hi"}', "command: a string is run by the shell only"),
        ('{"command": ["a"], "timeout": "soon"}', "$.timeout"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ClusterError) as raised:
        spec_from_json(text)
    assert says in str(raised.value)
