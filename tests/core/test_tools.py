from __future__ import annotations

from typing import Literal

import pytest

from opencomputer.bot.tools import ToolError, ToolRegistry, schema_for, tool
from opencomputer.plugins.calculator.tools import calculate
from opencomputer.plugins.clock.tools import current_time


def test_schema_is_derived_from_hints_and_docstring() -> None:
    async def search(
        query: str,
        limit: int = 5,
        kind: Literal["web", "news"] = "web",
        tags: list[str] | None = None,
    ) -> str:
        """Search things.

        Args:
            query: What to look for.
            limit: How many results,
                at most 20.
        """
        return query

    description, schema = schema_for(search)
    assert description == "Search things."
    assert schema == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "limit": {
                "type": "integer",
                "description": "How many results, at most 20.",
                "default": 5,
            },
            "kind": {"type": "string", "enum": ["web", "news"], "default": "web"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["query"],
    }


def test_registry_rejects_duplicates_and_non_tools() -> None:
    reg = ToolRegistry()
    reg.add(calculate, plugin="calculator")

    @tool(name="calculate")
    def other(expression: str) -> str:
        """Other."""
        return expression

    with pytest.raises(ValueError, match="two tools are named 'calculate'"):
        reg.add(other)
    with pytest.raises(TypeError):
        reg.add(lambda: None)
    assert [s["function"]["name"] for s in reg.specs()] == ["calculate"]


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("2 + 2 * 3", "8"),
        ("(3 + 4) * 2 ** 10", "7168"),
        ("sqrt(16) + 0.5", "4.5"),
        ("10 / 4", "2.5"),
        ("2^8", "256"),
        ("-3 + abs(-5)", "2"),
    ],
)
def test_calculator(expr: str, value: str) -> None:
    assert calculate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os')", "1/0", "2 ** 100000", "open('x')", "a + 1"])
def test_calculator_refuses_what_is_not_arithmetic(expr: str) -> None:
    with pytest.raises(ToolError):
        calculate(expr)


def test_clock() -> None:
    assert "Europe/Paris" in current_time("Europe/Paris")
    with pytest.raises(ToolError, match="unknown time zone"):
        current_time("Mars/Olympus")
