"""Cost precedence: reported > user table > genai-prices > unpriced."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from executor import (
    Cost,
    CostCalculator,
    ModelPrice,
    PriceTableError,
    TokenCounts,
    load_price_table,
    parse_price_table,
)

TOKENS = TokenCounts(input=1000, output=500, cache_read=2000, cache_write=400)


def test_reported_cost_wins_over_everything() -> None:
    table = parse_price_table({"models": {"claude-sonnet-4-5": {"input": 1, "output": 1}}})
    cost = CostCalculator(table).cost("claude-sonnet-4-5", "anthropic", TOKENS, 0.5)
    assert (cost.usd, cost.source) == (0.5, "reported")


def test_user_table_overrides_genai_prices() -> None:
    table = parse_price_table(
        {
            "models": {
                "claude-sonnet-4-5": {
                    "input": 2.0,
                    "output": 10.0,
                    "cache_read": 0.5,
                    "cache_write": 1.0,
                }
            }
        }
    )
    cost = CostCalculator(table).cost("claude-sonnet-4-5", "anthropic", TOKENS, None)
    expected = (1000 * 2.0 + 500 * 10.0 + 2000 * 0.5 + 400 * 1.0) / 1_000_000
    assert cost.source == "user_table"
    assert cost.usd == pytest.approx(expected)


def test_provider_specific_table_entry_wins() -> None:
    table = parse_price_table(
        {
            "models": {
                "m": {"input": 1.0, "output": 1.0},
                "bedrock/m": {"input": 9.0, "output": 9.0},
            }
        }
    )
    calc = CostCalculator(table)
    plain = TokenCounts(input=1_000_000)
    assert calc.cost("m", "bedrock", plain).usd == pytest.approx(9.0)
    assert calc.cost("m", "anthropic", plain).usd == pytest.approx(1.0)
    assert calc.cost("m", None, plain).usd == pytest.approx(1.0)


def test_missing_cache_prices_default_to_the_input_price() -> None:
    table = parse_price_table({"models": {"m": {"input": 4.0, "output": 8.0}}})
    assert table.models["m"] == ModelPrice(4.0, 8.0, 4.0, 4.0)


def test_genai_prices_is_given_input_tokens_including_cache_tokens() -> None:
    # Anthropic's public Sonnet 4.5 prices per million: $3 in, $15 out,
    # $0.30 cache read, $3.75 cache write.  Had cache tokens been left out of
    # genai-prices' input_tokens, it would subtract them from the plain input.
    cost = CostCalculator().cost("claude-sonnet-4-5", "anthropic", TOKENS, None)
    expected = (1000 * 3 + 500 * 15 + 2000 * 0.30 + 400 * 3.75) / 1_000_000
    assert cost.source == "computed"
    assert cost.usd == pytest.approx(expected)
    reference = calc_price(
        Usage(input_tokens=3400, output_tokens=500, cache_read_tokens=2000, cache_write_tokens=400),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    )
    assert cost.usd == pytest.approx(float(reference.total_price))


def test_openai_model_without_provider_is_found() -> None:
    cost = CostCalculator().cost("gpt-4o", None, TokenCounts(input=1_000_000), None)
    assert cost.source == "computed"
    assert cost.usd is not None
    assert cost.usd > 0


def test_unknown_model_is_unpriced_not_free() -> None:
    calc = CostCalculator()
    cost = calc.cost("acme-llm-9000", None, TOKENS, None)
    assert (cost.usd, cost.source) == (None, "unpriced")
    assert calc.cost("", None, TOKENS, None).source == "unpriced"


def test_unknown_models_are_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    calc = CostCalculator()
    calc.cost("acme-llm-9000", None, TOKENS, None)
    calls: list[str] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("called")
        raise LookupError("unknown")

    monkeypatch.setattr("executor.pricing._cost.calc_price", counting)
    assert calc.cost("acme-llm-9000", None, TOKENS, None).source == "unpriced"
    assert calls == []


def test_load_price_table_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."my-model"]\ninput = 1.5\noutput = 6\ncache_read = 0.15\ncache_write = 2\n'
    )
    table = load_price_table(path)
    assert table.lookup("my-model", None) == ModelPrice(1.5, 6.0, 0.15, 2.0)
    assert table.source == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[models."m"]\ninput = "cheap"\noutput = 1\n', "model 'm': input: expected a number"),
        ('[models."m"]\ninput = 1\n', "model 'm': output: missing"),
        ('[models."m"]\ninput = 1\noutput = -2\n', "model 'm': output: must be finite and >= 0"),
        ('[models."m"]\ninput = 1\noutput = 1\ncached = 1\n', "model 'm': unknown key(s)"),
        ("[gpt]\ninput = 1\n", "unknown top-level key(s) ['gpt']"),
        ("models = [", "not valid TOML"),
    ],
)
def test_bad_price_tables_name_file_model_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PriceTableError) as caught:
        load_price_table(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_price_table_file(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="cannot read price table"):
        load_price_table(tmp_path / "absent.toml")


MODELS = [
    ("claude-sonnet-4-5", "anthropic"),  # tiered at 200k input tokens
    ("claude-haiku-4-5", None),
    ("gpt-4o", None),
    ("gpt-4o-mini", "openai"),
    ("gemini-2.5-pro", None),
]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    tokens=st.builds(
        TokenCounts,
        st.integers(0, 300_000),
        st.integers(0, 50_000),
        st.integers(0, 300_000),
        st.integers(0, 50_000),
    ),
)
def test_memoised_rates_match_calc_price(
    model: tuple[str, str | None], tokens: TokenCounts
) -> None:
    name, provider = model
    expected = calc_price(
        Usage(
            input_tokens=tokens.input + tokens.cache_read + tokens.cache_write,
            output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read,
            cache_write_tokens=tokens.cache_write,
        ),
        model_ref=name,
        provider_id=provider,
    )
    cost = SHARED_CALCULATOR.cost(name, provider, tokens)
    assert cost.source == "computed"
    assert cost.usd == pytest.approx(float(expected.total_price), rel=1e-9, abs=1e-12)


SHARED_CALCULATOR = CostCalculator()


def test_parts_are_priced_one_by_one_so_no_tier_is_crossed_by_their_sum() -> None:
    calculator = CostCalculator()
    part = TokenCounts(input=150_000, output=10)  # Sonnet 4.5 charges more above 200k input
    one = calculator.cost("claude-sonnet-4-5", "anthropic", part)
    summed_as_one = calculator.cost("claude-sonnet-4-5", "anthropic", part + part)
    as_parts = calculator.cost("claude-sonnet-4-5", "anthropic", part + part, parts=[part, part])
    assert one.usd is not None
    assert summed_as_one.usd is not None
    assert as_parts.source == "computed"
    assert as_parts.usd is not None
    assert as_parts.usd == pytest.approx(2 * one.usd)
    assert as_parts.usd < summed_as_one.usd


def test_parts_keep_their_source() -> None:
    table = parse_price_table({"models": {"mine": {"input": 1.0, "output": 2.0}}})
    calculator = CostCalculator(table)
    parts = [TokenCounts(input=1_000_000), TokenCounts(output=1_000_000)]
    total = TokenCounts(input=1_000_000, output=1_000_000)
    assert calculator.cost("mine", None, total, parts=parts) == Cost(3.0, "user_table")
    assert calculator.cost("no-such-model-xyz", None, total, parts=parts) == Cost(None, "unpriced")
    assert calculator.cost("mine", None, total, 0.5, parts=parts) == Cost(0.5, "reported")


token_counts = st.builds(
    TokenCounts,
    st.integers(0, 300_000),
    st.integers(0, 50_000),
    st.integers(0, 300_000),
    st.integers(0, 50_000),
)


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from([*MODELS, ("mine", None), ("", None), ("no-such-model-xyz", None)]),
    parts=st.lists(token_counts, min_size=2, max_size=6),
)
def test_parts_cost_exactly_the_sum_of_each_part_priced_alone(
    model: tuple[str, str | None], parts: list[TokenCounts]
) -> None:
    # Parts are priced with the source looked up once; each must cost what it costs alone,
    # on either side of a price tier (Sonnet 4.5: 200k input).
    name, provider = model
    table = parse_price_table({"models": {"mine": {"input": 1.5, "output": 7.0}}})
    calculator = CostCalculator(table)
    alone = [calculator.cost(name, provider, part) for part in parts]
    total = sum(parts, TokenCounts())
    as_parts = calculator.cost(name, provider, total, parts=parts)
    assert {cost.source for cost in alone} == {as_parts.source}
    if as_parts.source == "unpriced":
        assert as_parts.usd is None
    else:
        assert as_parts.usd == math.fsum(cost.usd or 0.0 for cost in alone)
