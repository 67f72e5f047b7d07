"""The report's charts, drawn from the numbers as a few shapes, rendered two ways.

A chart is a list of rectangles, lines, polylines and labels in its own coordinates. The HTML
report embeds it as inline SVG (crisp at any width, a few kilobytes of text, nothing to fetch);
the mailed report attaches it as a PNG drawn with Pillow, because the big web mail clients
(Gmail among them) strip inline SVG. Both renderings come from the same shapes, so the file and
the mail show the same picture.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

UP, DOWN, NEUTRAL, GRID, INK = "#2e8b57", "#c44e52", "#4c72b0", "#bbbbbb", "#222222"
MOVERS = 5


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    css: str = ""
    title: str = ""


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = INK
    dashed: bool = False
    css: str = ""


@dataclass(frozen=True)
class Polyline:
    points: tuple[tuple[float, float], ...]
    stroke: str = NEUTRAL
    width: float = 1.5
    css: str = ""


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # start | middle | end, as SVG's text-anchor
    size: int = 11


Shape = Rect | Line | Polyline | Label


@dataclass(frozen=True)
class Chart:
    name: str  # unique within a report: the mail's Content-ID, a test's handle
    width: int
    height: int
    label: str  # what a screen reader (or a mail without images) says instead
    shapes: list[Shape] = field(default_factory=list)
    css: str = "chart"


# ---- rendering -----------------------------------------------------------------------------


def to_svg(chart: Chart) -> str:
    """Inline SVG (HTML5 needs no xmlns); the page's CSS scales it to its width."""
    parts = [
        f'<svg viewBox="0 0 {chart.width} {chart.height}" role="img" '
        f'aria-label="{html.escape(chart.label)}" class="{chart.css}" data-chart="{chart.name}">'
    ]
    parts += [_svg_shape(shape) for shape in chart.shapes]
    parts.append("</svg>")
    return "\n".join(parts)


def _svg_shape(shape: Shape) -> str:
    if isinstance(shape, Rect):
        title = f"<title>{html.escape(shape.title)}</title>" if shape.title else ""
        css = f' class="{shape.css}"' if shape.css else ""
        return (
            f'<rect{css} x="{shape.x:.1f}" y="{shape.y:.1f}" width="{shape.width:.1f}" '
            f'height="{shape.height:.1f}" fill="{shape.fill}">{title}</rect>'
        )
    if isinstance(shape, Line):
        css = f' class="{shape.css}"' if shape.css else ""
        dash = ' stroke-dasharray="4 3"' if shape.dashed else ""
        return (
            f'<line{css} x1="{shape.x1:.1f}" y1="{shape.y1:.1f}" x2="{shape.x2:.1f}" '
            f'y2="{shape.y2:.1f}" stroke="{shape.stroke}"{dash}/>'
        )
    if isinstance(shape, Polyline):
        css = f' class="{shape.css}"' if shape.css else ""
        # One %-format over the flat coordinates: a report has thousands of sparkline points.
        flat = tuple(value for point in shape.points for value in point)
        points = " ".join(["%.1f,%.1f"] * len(shape.points)) % flat
        return (
            f'<polyline{css} points="{points}" fill="none" stroke="{shape.stroke}" '
            f'stroke-width="{shape.width}"/>'
        )
    return (
        f'<text x="{shape.x:.1f}" y="{shape.y:.1f}" text-anchor="{shape.anchor}" '
        f'font-size="{shape.size}">{html.escape(shape.text)}</text>'
    )


_PIL_ANCHORS = {"start": "ls", "middle": "ms", "end": "rs"}  # baseline-anchored, as SVG text


def to_png(chart: Chart, scale: int = 2) -> bytes:
    """The same chart as a PNG (`scale` pixels per unit, so it stays sharp on a phone)."""
    image = Image.new("RGB", (chart.width * scale, chart.height * scale), "white")
    draw = ImageDraw.Draw(image)
    for shape in chart.shapes:
        _draw(draw, shape, scale)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, scale: int) -> None:
    if isinstance(shape, Rect):
        x, y = shape.x * scale, shape.y * scale
        right = x + max(shape.width * scale, 1) - 1
        bottom = y + max(shape.height * scale, 1) - 1
        draw.rectangle([x, y, max(right, x), max(bottom, y)], fill=shape.fill)
    elif isinstance(shape, Line):
        start = (shape.x1 * scale, shape.y1 * scale)
        end = (shape.x2 * scale, shape.y2 * scale)
        for a, b in _dashes(start, end, 4 * scale, 3 * scale) if shape.dashed else [(start, end)]:
            draw.line([a, b], fill=shape.stroke, width=scale)
    elif isinstance(shape, Polyline):
        points = [(x * scale, y * scale) for x, y in shape.points]
        width = max(1, round(shape.width * scale))
        draw.line(points, fill=shape.stroke, width=width, joint="curve")
    else:
        draw.text(
            (shape.x * scale, shape.y * scale),
            shape.text,
            fill=INK,
            font=_font(shape.size * scale),
            anchor=_PIL_ANCHORS[shape.anchor],
        )


def _dashes(
    start: tuple[float, float], end: tuple[float, float], on: float, off: float
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    (x1, y1), (x2, y2) = start, end
    length = float(np.hypot(x2 - x1, y2 - y1)) or 1.0
    segments, at = [], 0.0
    while at < length:
        stop = min(at + on, length)
        segments.append(
            (
                (x1 + (x2 - x1) * at / length, y1 + (y2 - y1) * at / length),
                (x1 + (x2 - x1) * stop / length, y1 + (y2 - y1) * stop / length),
            )
        )
        at = stop + off
    return segments


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: no system font needed on a headless box.
    return ImageFont.load_default(size=size)


_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def spark_text(values: Sequence[float], width: int = 20) -> str:
    """A sparkline in text (Markdown in the UI, the mail's plain-text part): `width` blocks, the
    last value of each stretch of the series."""
    series = np.asarray(values, dtype="float64")
    series = series[np.isfinite(series)]
    if len(series) < 2:
        return ""
    picks = series[np.linspace(0, len(series) - 1, min(width, len(series))).round().astype(int)]
    low, high = float(picks.min()), float(picks.max())
    if high == low:
        return _SPARK_BLOCKS[3] * len(picks)
    steps = ((picks - low) / (high - low) * (len(_SPARK_BLOCKS) - 1)).round().astype(int)
    return "".join(_SPARK_BLOCKS[step] for step in steps)


# ---- the report's charts ---------------------------------------------------------------------

# Each chart is drawn narrow enough (360-480 units) to be read at a phone's width without
# zooming; on a wide screen the page sets them side by side.
_W, _H, _TOP, _BOTTOM = 360, 260, 40, 30
_PANEL = _W - 30


def returns_chart(moves: pd.DataFrame) -> Chart:
    """The distribution of the session's returns, median dashed."""
    returns = moves["return_1d"].dropna().to_numpy() * 100
    shapes = _histogram(returns, x0=15)
    return Chart("returns", _W, _H, "Distribution of the session's returns", shapes)


def movers_chart(moves: pd.DataFrame) -> Chart:
    """The session's biggest movers: the worst five and the best five, worst first (`moves` is
    ordered worst to best)."""
    count = len(moves)
    picked = np.unique(np.r_[0 : min(MOVERS, count), max(count - MOVERS, 0) : count])
    movers = moves.iloc[picked]
    return Chart("movers", _W, _H, "Biggest movers", _movers_bars(movers, x0=15))


def _histogram(values: np.ndarray, x0: float) -> list[Shape]:
    shapes: list[Shape] = [Label(_W / 2, 20, "Returns (%), median dashed", size=13)]
    if not len(values):
        return shapes
    counts, edges = np.histogram(values, bins=min(30, max(5, len(values) // 3)))
    height = _H - _TOP - _BOTTOM
    low, high = float(edges[0]), float(edges[-1])
    span = (high - low) or 1.0
    width = _PANEL / len(counts)
    for index, count in enumerate(counts):
        bar = height * count / counts.max()
        shapes.append(
            Rect(
                x0 + index * width,
                _TOP + height - bar,
                max(width - 1, 1),
                bar,
                NEUTRAL,
                "bin",
                f"{edges[index]:.2f}% to {edges[index + 1]:.2f}%: {count}",
            )
        )
    median = x0 + _PANEL * (float(np.median(values)) - low) / span
    axis = _TOP + height + 16
    return [
        *shapes,
        Line(median, _TOP, median, _TOP + height, dashed=True, css="median"),
        Label(x0, axis, f"{low:.1f}", "start", 12),
        Label(x0 + _PANEL, axis, f"{high:.1f}", "end", 12),
    ]


def _movers_bars(movers: pd.DataFrame, x0: float) -> list[Shape]:
    shapes: list[Shape] = [Label(_W / 2, 20, "Biggest movers (%)", size=13)]
    if movers.empty:
        return shapes
    moves = movers["return_1d"].to_numpy() * 100
    reach = float(np.abs(moves).max()) or 1.0
    zero = x0 + 60 + (_PANEL - 60) / 2
    half = (_PANEL - 60) / 2
    row = (_H - _TOP - 10) / len(moves)
    for index, (symbol, move) in enumerate(zip(movers["symbol"], moves, strict=True)):
        y = _TOP + index * row
        length = half * abs(move) / reach
        shapes += [
            Label(x0, y + row * 0.75, str(symbol), "start", 12),
            Rect(
                zero - length if move < 0 else zero,
                y + row * 0.15,
                max(length, 0.5),
                row * 0.7,
                DOWN if move < 0 else UP,
                "mover",
                f"{symbol}: {move:+.2f}%",
            ),
        ]
    return [*shapes, Line(zero, _TOP, zero, _H - 10, stroke="#888888")]


def breadth_chart(history: pd.DataFrame) -> Chart:
    """The last sessions' advancers minus decliners (bars) and share above the 200-day SMA
    (line, 0-100 %), oldest left."""
    width, height = 480, 300
    top, split, bottom, left, right = 44, 150, 262, 34, width - 8
    plot = right - left
    shapes: list[Shape] = [
        Label(width / 2, 18, f"Market breadth, last {len(history)} sessions", size=14),
        Label(left, top - 6, "Advancers - decliners", "start", 12),
        Label(left, split + 20, "Above 200-day SMA (%)", "start", 12),
    ]
    if history.empty:
        return Chart("breadth", width, height, "Market breadth over recent sessions", shapes)
    net = (history["advancers"] - history["decliners"]).to_numpy(dtype="float64")
    reach = float(np.abs(net).max()) or 1.0
    zero = (top + split) / 2
    half = (split - top) / 2 - 4
    step = plot / len(history)
    for index, (day, value) in enumerate(zip(history["trade_date"], net, strict=True)):
        length = half * abs(value) / reach
        shapes.append(
            Rect(
                left + index * step,
                zero - length if value >= 0 else zero,
                max(step - 1, 1),
                max(length, 0.5),
                UP if value >= 0 else DOWN,
                "net",
                f"{day}: {int(value):+d}",
            )
        )
    shapes.append(Line(left, zero, right, zero, stroke=GRID))
    low, high = split + 30, bottom
    shapes += [
        Line(left, low, right, low, stroke=GRID),
        Line(left, (low + high) / 2, right, (low + high) / 2, stroke=GRID, dashed=True),
        Line(left, high, right, high, stroke=GRID),
        Label(left - 4, low + 4, "100", "end", 11),
        Label(left - 4, (low + high) / 2 + 4, "50", "end", 11),
        Label(left - 4, high + 4, "0", "end", 11),
    ]
    share = history["pct_above_sma_200"].to_numpy(dtype="float64")
    points = tuple(
        (left + (index + 0.5) * step, high - (high - low) * value / 100)
        for index, value in enumerate(share)
        if np.isfinite(value)
    )
    if len(points) > 1:
        shapes.append(Polyline(points, NEUTRAL, 2, "above-sma"))
    first, last = history["trade_date"].iloc[0], history["trade_date"].iloc[-1]
    shapes += [
        Label(left, height - 12, f"{first}", "start", 12),
        Label(right, height - 12, f"{last}", "end", 12),
    ]
    return Chart("breadth", width, height, "Market breadth over recent sessions", shapes)


def groups_chart(groups: pd.DataFrame) -> Chart:
    """Each GICS industry group's average return for the day and the last 20 sessions: the
    group's name, and under it its two bars."""
    width, row, top = 480, 34, 48
    height = top + row * max(len(groups), 1) + 6
    half = (width - 30) / 4
    zeros = {"day": 10 + half, "sessions_20": 20 + 3 * half}
    shapes: list[Shape] = [
        Label(width / 2, 18, "Industry groups: average return (%)", size=14),
        Label(zeros["day"], top - 8, "Day", size=12),
        Label(zeros["sessions_20"], top - 8, "Last 20 sessions", size=12),
    ]
    for column, zero in zeros.items():
        values = groups[column].to_numpy(dtype="float64") * 100
        finite = values[np.isfinite(values)]
        reach = (float(np.abs(finite).max()) if len(finite) else 0.0) or 1.0
        for index, (group, value) in enumerate(zip(groups["group"], values, strict=True)):
            if not np.isfinite(value):
                continue
            length = (half - 4) * abs(value) / reach
            shapes.append(
                Rect(
                    zero - length if value < 0 else zero,
                    top + index * row + 17,
                    max(length, 0.5),
                    12,
                    DOWN if value < 0 else UP,
                    f"group-{column}",
                    f"{group}: {value:+.2f}%",
                )
            )
        shapes.append(Line(zero, top, zero, top + row * len(groups), stroke="#888888"))
    for index, group in enumerate(groups["group"]):
        shapes.append(Label(10, top + index * row + 13, str(group), "start", 12))
    return Chart("groups", width, height, "Returns by GICS industry group", shapes)


def sparkline(name: str, values: Sequence[float], width: int = 120, height: int = 24) -> Chart:
    """A symbol's recent path (adjusted), last point marked; green if it ended higher."""
    series = np.asarray(values, dtype="float64")
    finite = np.isfinite(series)
    shapes: list[Shape] = []
    if finite.sum() > 1:
        values = series[finite]
        low, high = float(values.min()), float(values.max())
        xs = 2 + np.flatnonzero(finite) * (width - 4) / (len(series) - 1)
        ys = height - 2 - (height - 4) * (values - low) / ((high - low) or 1.0)
        points = tuple(zip(xs.tolist(), ys.tolist(), strict=True))
        colour = UP if values[-1] >= values[0] else DOWN
        x, y = points[-1]
        shapes += [Polyline(points, colour, 1.2, "spark"), Rect(x - 1.5, y - 1.5, 3, 3, colour)]
    return Chart(name, width, height, "Price over the last sessions", shapes, css="spark")
