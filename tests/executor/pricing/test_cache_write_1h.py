"""Issue 19: Anthropic's 1-hour cache writes (``cache_creation.ephemeral_1h_input_tokens``)
cost more than 5-minute ones; a cost runcast works out itself prices each at its rate."""

from __future__ import annotations

import json

import pytest

from executor import CostCalculator, TokenCounts, UsageParser
from executor.pricing import parse_price_table

SONNET = "claude-sonnet-4-5-20250929"  # input $3/M: 5-minute writes $3.75/M, 1-hour $6/M


def message(five_minutes: int, one_hour: int) -> str:
    usage = {
        "input_tokens": 10,
        "output_tokens": 0,
        "cache_creation_input_tokens": five_minutes + one_hour,
        "cache_read_input_tokens": 0,
        "cache_creation": {
            "ephemeral_5m_input_tokens": five_minutes,
            "ephemeral_1h_input_tokens": one_hour,
        },
    }
    return json.dumps({"type": "message", "id": "msg_1", "model": SONNET, "usage": usage})


@pytest.mark.parametrize("typed", [True, False])
def test_the_split_is_read_from_a_message_and_a_claude_code_turn(typed: bool) -> None:
    [record] = UsageParser(typed_decode=typed).parse(message(300, 700)) or []
    assert record.tokens == TokenCounts(10, 0, 0, 1000, cache_write_1h=700)
    turn = json.dumps({"type": "assistant", "message": json.loads(message(0, 1000))})
    [record] = UsageParser(typed_decode=typed).parse(turn) or []
    assert record.tokens.cache_write_1h == 1000


def test_genai_prices_rates_price_one_hour_writes_at_twice_the_input() -> None:
    # 100,000 tokens: below the model's long-context tier (200,000 input tokens).
    costs = CostCalculator()
    five = costs.cost(SONNET, None, TokenCounts(cache_write=100_000))
    hour = costs.cost(SONNET, None, TokenCounts(cache_write=100_000, cache_write_1h=100_000))
    mixed = costs.cost(SONNET, None, TokenCounts(cache_write=100_000, cache_write_1h=25_000))
    assert five.usd == pytest.approx(0.375)
    assert hour.usd == pytest.approx(0.6)
    assert mixed.usd == pytest.approx(0.075 * 3.75 + 0.025 * 6.0)
    # Records priced one by one (a read's batch) agree.
    parts = [TokenCounts(cache_write=50_000, cache_write_1h=25_000)] * 2
    both = costs.cost(SONNET, None, TokenCounts(cache_write=100_000), parts=parts)
    assert both.usd == pytest.approx(0.05 * 3.75 + 0.05 * 6.0)


def test_a_price_table_may_price_one_hour_writes() -> None:
    table = parse_price_table(
        {"models": {"m": {"input": 1.0, "output": 2.0, "cache_write": 1.25, "cache_write_1h": 2.0}}}
    )
    costs = CostCalculator(prices=table)
    cost = costs.cost("m", None, TokenCounts(cache_write=1_000_000, cache_write_1h=400_000))
    assert cost.usd == pytest.approx(0.6 * 1.25 + 0.4 * 2.0)
    plain = parse_price_table({"models": {"m": {"input": 1.0, "output": 2.0}}})
    # Without its own price a 1-hour write costs what any cache write does.
    cost = CostCalculator(prices=plain).cost(
        "m", None, TokenCounts(cache_write=10, cache_write_1h=10)
    )
    assert cost.usd == pytest.approx(10 / 1_000_000)


def test_a_reported_cost_stays_as_reported() -> None:
    cost = CostCalculator().cost(SONNET, None, TokenCounts(cache_write=10, cache_write_1h=10), 0.5)
    assert (cost.usd, cost.source) == (0.5, "reported")
