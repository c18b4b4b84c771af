"""Pricing: what usage costs, and the spend ledger a budget is checked against.

``CostCalculator`` prices token counts (a reported cost, else the user's
``PriceTable``, else genai-prices, else unpriced); ``Budget`` adds up the spend
and says when it crosses the warning threshold or the limit.  Nothing here
knows about tasks: the executor's ``Spending`` joins the two to task records.
"""

from ._budget import BUDGET_WARNING_THRESHOLD, Budget, check_budget, check_spent
from ._cost import Cost, CostCalculator
from ._exceptions import PriceTableError
from ._prices import ModelPrice, PriceTable, load_price_table, parse_price_table

__all__ = [
    "BUDGET_WARNING_THRESHOLD",
    "Budget",
    "Cost",
    "CostCalculator",
    "ModelPrice",
    "PriceTable",
    "PriceTableError",
    "check_budget",
    "check_spent",
    "load_price_table",
    "parse_price_table",
]
