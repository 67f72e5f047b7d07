"""The screeners file (`config/screeners.yml`, path in ASX_SCREENERS_FILE): parsed and validated.

It is read when the definitions load, so a typo fails the code location with the file, the
screener's name and what was expected, instead of failing a run halfway. Shape:

    symbol_sets:                    # optional named universes
      banks: {symbols: [CBA, WBC]}  # a list of codes, or
      miners: {gics_industry_groups: [Materials]}
    screeners:
      oversold_uptrend:
        description: ...            # optional
        universe: all               # `all`, a symbol set's name, or a list of codes
        filters: ["close > sma_200", "rsi_14 < 30"]    # all must hold
        rank_by: rsi_14             # an arithmetic expression over columns
        order: ascending            # or descending (the default)
        top_n: 10

Expressions are a small, safe subset of Python parsed with `ast` and evaluated by walking the
tree (never `eval`): column names, numbers, + - * /, unary minus, abs(), and in filters one
(possibly chained) comparison; text columns may only be compared with == or != to a string.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from asx_pipeline.analytics.indicators import INDICATOR_COLUMNS

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
SYMBOL_NUMERIC_COLUMNS = ("market_cap",)
TEXT_COLUMNS = ("gics_industry_group", "status", "company_name")
NUMERIC_COLUMNS = (*INDICATOR_COLUMNS, *PRICE_COLUMNS, *SYMBOL_NUMERIC_COLUMNS)
KNOWN_COLUMNS = (*NUMERIC_COLUMNS, *TEXT_COLUMNS)
FUNCTIONS = ("abs",)

_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


class ScreenerConfigError(ValueError):
    """The screeners file is malformed; the message names the file, screener and expectation."""


class SymbolSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbols: list[str] = Field(default_factory=list)
    gics_industry_groups: list[str] = Field(default_factory=list)


class ScreenerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    universe: str | list[str] = "all"
    filters: list[str] = Field(min_length=1)
    rank_by: str
    order: Literal["ascending", "descending"] = "descending"
    top_n: int = Field(10, ge=1, le=500)

    @field_validator("universe")
    @classmethod
    def _codes_upper(cls, value: str | list[str]) -> str | list[str]:
        return [code.strip().upper() for code in value] if isinstance(value, list) else value


class ScreenersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol_sets: dict[str, SymbolSet] = Field(default_factory=dict)
    screeners: dict[str, ScreenerSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Screener:
    """One validated screener, its expressions parsed."""

    name: str
    description: str
    universe: str | tuple[str, ...]
    filters: tuple[tuple[str, ast.expr], ...]
    rank_by: tuple[str, ast.expr]
    ascending: bool
    top_n: int

    @property
    def columns(self) -> list[str]:
        """Every column the screener reads, in first-use order (its `matched_values`)."""
        seen: dict[str, None] = {}
        for _, tree in (*self.filters, self.rank_by):
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and node.id in KNOWN_COLUMNS:
                    seen.setdefault(node.id)
        return list(seen)


@dataclass(frozen=True)
class ScreenerSet:
    """Everything the file defines."""

    path: str
    symbol_sets: dict[str, SymbolSet]
    screeners: tuple[Screener, ...]


def load_screeners(path: Path | str) -> ScreenerSet:
    """Read and validate a screeners file; raise ScreenerConfigError on any problem."""
    location = Path(path)
    try:
        raw = yaml.safe_load(location.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScreenerConfigError(
            f"{location}: screeners file not found (set ASX_SCREENERS_FILE to its path)"
        ) from None
    except yaml.YAMLError as error:
        raise ScreenerConfigError(f"{location}: not valid YAML: {error}") from None
    return parse_screeners(raw, str(location))


def parse_screeners(raw: object, path: str) -> ScreenerSet:
    """Validate an already-loaded YAML document (see the module docstring for its shape)."""
    if not isinstance(raw, dict):
        raise ScreenerConfigError(
            f"{path}: expected a mapping with a `screeners:` key, got {type(raw).__name__}"
        )
    _check_each_screener_shape(raw, path)
    try:
        document = ScreenersFile.model_validate(raw)
    except ValidationError as error:
        raise ScreenerConfigError(f"{path}: {_describe(error)}") from None
    screeners = tuple(
        _screener(name, spec, document.symbol_sets, path)
        for name, spec in document.screeners.items()
    )
    return ScreenerSet(path=path, symbol_sets=document.symbol_sets, screeners=screeners)


def _check_each_screener_shape(raw: dict, path: str) -> None:
    """Validate screeners one by one first, so an error names the screener it is in."""
    screeners = raw.get("screeners")
    if not isinstance(screeners, dict):
        return  # the file-level validation below says what is expected
    for name, spec in screeners.items():
        try:
            ScreenerSpec.model_validate(spec)
        except ValidationError as error:
            raise ScreenerConfigError(f"{path}: screener {name!r}: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "file"
        problems.append(f"{where}: {problem['msg']}")
    return "; ".join(problems)


def _screener(
    name: str, spec: ScreenerSpec, symbol_sets: dict[str, SymbolSet], path: str
) -> Screener:
    where = f"{path}: screener {name!r}"
    named = isinstance(spec.universe, str) and spec.universe != "all"
    if named and spec.universe not in symbol_sets:
        known = ", ".join(["all", *sorted(symbol_sets)])
        raise ScreenerConfigError(
            f"{where}: universe {spec.universe!r} is not `all`, a list of codes or a symbol "
            f"set; expected one of: {known}"
        )
    filters = tuple((text, _parse(text, "filter", where)) for text in spec.filters)
    rank_by = (spec.rank_by, _parse(spec.rank_by, "rank_by", where))
    universe = tuple(spec.universe) if isinstance(spec.universe, list) else spec.universe
    return Screener(
        name=name,
        description=spec.description,
        universe=universe,
        filters=filters,
        rank_by=rank_by,
        ascending=spec.order == "ascending",
        top_n=spec.top_n,
    )


def _parse(text: str, role: Literal["filter", "rank_by"], where: str) -> ast.expr:
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ScreenerConfigError(
            f"{where}: {role} {text!r} is not an expression; expected e.g. "
            "'close > sma_200' or 'rsi_14'"
        ) from None
    problem = _problem(tree, role)
    if problem:
        raise ScreenerConfigError(f"{where}: {role} {text!r}: {problem}")
    return tree


def _problem(tree: ast.expr, role: str) -> str | None:
    """What is wrong with an expression, or None."""
    if role == "filter":
        if not isinstance(tree, ast.Compare):
            return "expected a comparison such as 'rsi_14 < 30' or 'close > sma_200'"
        return _comparison_problem(tree)
    return _arithmetic_problem(tree)


def _comparison_problem(tree: ast.Compare) -> str | None:
    operands = [tree.left, *tree.comparators]
    texts = [n for n in operands if _is_text(n)]
    if texts:
        if len(operands) != 2 or not isinstance(tree.ops[0], ast.Eq | ast.NotEq):
            return "text columns can only be compared with == or != to a quoted string"
        other = operands[1] if texts[0] is operands[0] else operands[0]
        if not (isinstance(other, ast.Constant) and isinstance(other.value, str)):
            return "expected a quoted string on the other side of a text column"
        return None
    if not all(isinstance(op, _COMPARISONS) for op in tree.ops):
        return "expected a comparison with <, <=, >, >=, == or !="
    for operand in operands:
        problem = _arithmetic_problem(operand)
        if problem:
            return problem
    return None


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in TEXT_COLUMNS


def _arithmetic_problem(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        if node.id not in NUMERIC_COLUMNS:
            hint = " (a text column: compare it with == or != in a filter)" * _is_text(node)
            expected = ", ".join(NUMERIC_COLUMNS)
            return f"unknown column {node.id!r}{hint}; expected one of: {expected}"
        return None
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            return f"expected a number, got {node.value!r}"
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
        return _arithmetic_problem(node.left) or _arithmetic_problem(node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _arithmetic_problem(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS or len(node.args) != 1:
            return f"unknown function {node.func.id!r}; expected one of: {', '.join(FUNCTIONS)}"
        return _arithmetic_problem(node.args[0])
    return (
        f"unsupported expression {ast.unparse(node)!r}; expected columns, numbers, + - * / "
        "and abs()"
    )
