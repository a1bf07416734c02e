"""Small server-side SVG charts for the admin dashboard.

The admin must work offline and without JavaScript, so charts are drawn here as
inline `<svg>` strings: stacked bars, lines, horizontal share bars and sparklines.
Every chart carries `role="img"`, an `aria-label` and a `<title>`; every text that
reaches the markup (labels, series names, numbers) goes through `escape`, because
model names, usernames and chat names are whatever clients sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito order).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999")
OTHER_COLOUR = "#BBBBBB"

# Drawn for a half-width column of the admin (~500 px), so 11 px text stays about 11 px.
WIDTH = 520
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 60, 12, 12, 30
MAX_X_LABELS = 6


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    colour: str = ""


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ceiling(value: float) -> float:
    """A round number at or above VALUE (1, 2, 2.5 or 5 times a power of ten), so the
    axis reads well; 1 for nothing at all."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # unreachable: 10 * power >= value by construction


def short_number(value: float) -> str:
    """1234 -> 1.2k, 2500000 -> 2.5M; small fractions keep two decimals."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    if magnitude and magnitude < 10 and value != int(value):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.0f}"


def _fmt(value: float) -> str:
    # Coordinates to one decimal keep the markup small and stable for tests.
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(label: str, width: int, height: int, css_class: str) -> list[str]:
    text = escape(label)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{text}">',
        f"<title>{text}</title>",
    ]


def _axes(labels: Sequence[str], top_value: float, unit: str) -> list[str]:
    """Y grid with three ticks, and at most MAX_X_LABELS x labels, evenly spaced."""
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(4):
        value = top_value * i / 3
        y = TOP + plot_h - plot_h * i / 3
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_fmt(y)}" y2="{_fmt(y)}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end" font-size="11" fill="#555">'
            f"{escape(short_number(value) + unit)}</text>"
        )
    count = len(labels)
    if count:
        step = max(1, math.ceil(count / MAX_X_LABELS))
        slot = (WIDTH - LEFT - RIGHT) / count
        for i in range(0, count, step):
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{_fmt(x)}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" fill="#555">'
                f"{escape(labels[i])}</text>"
            )
    return parts


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{s.colour}"></span>{escape(s.name)}</li>' for s in series
    )
    return f'<ul class="chart-legend">{items}</ul>'


def _coloured(series: Sequence[Series]) -> list[Series]:
    return [s if s.colour else Series(s.name, s.values, colour(i)) for i, s in enumerate(series)]


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *, label: str, unit: str = "") -> SafeString:
    """One bar per label, the SERIES stacked in it (bottom first), with a legend."""
    series = _coloured(series)
    totals = [sum((s.values[i] or 0) for s in series) for i in range(len(labels))]
    top_value = nice_ceiling(max(totals, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    bar_w = max(1.0, slot * 0.8)
    parts = _open(label, WIDTH, HEIGHT, "chart chart-stacked")
    parts += _axes(labels, top_value, unit)
    for i, text in enumerate(labels):
        base = 0.0
        x = LEFT + slot * i + (slot - bar_w) / 2
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top_value
            y = TOP + plot_h - plot_h * base / top_value - h
            parts.append(
                f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(bar_w)}" height="{_fmt(h)}" fill="{s.colour}">'
                f"<title>{escape(f'{text} · {s.name}: {short_number(value)}{unit}')}</title></rect>"
            )
            base += value
    parts.append("</svg>")
    return mark_safe("".join(parts) + _legend(series))


def lines(labels: Sequence[str], series: Sequence[Series], *, label: str, unit: str = "") -> SafeString:
    """One polyline per series; a None value breaks the line (no data in that bucket)."""
    series = _coloured(series)
    peak = max((v for s in series for v in s.values if v is not None), default=0)
    top_value = nice_ceiling(peak)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    parts = _open(label, WIDTH, HEIGHT, "chart chart-lines")
    parts += _axes(labels, top_value, unit)
    for s in series:
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + slot * (i + 0.5)
            y = TOP + plot_h - plot_h * value / top_value
            runs[-1].append(f"{_fmt(x)},{_fmt(y)}")
        for run in runs:
            if len(run) == 1:
                x, y = run[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{s.colour}"/>')
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.colour}" stroke-width="2"/>'
                )
    parts.append("</svg>")
    return mark_safe("".join(parts) + _legend(series))


def share_bars(items: Sequence[tuple[str, float]], *, label: str) -> SafeString:
    """Horizontal bars, one per (name, value), each with its share of the total."""
    total = sum(value for _, value in items) or 1
    row_h = 22
    height = max(row_h, row_h * len(items)) + 4
    name_w = 170
    bar_space = WIDTH - name_w - 60
    parts = _open(label, WIDTH, height, "chart chart-share")
    for i, (name, value) in enumerate(items):
        y = 2 + i * row_h
        share = value / total
        w = max(0.0, bar_space * share)
        shown = name if len(name) <= 26 else name[:25] + "…"
        parts.append(
            f'<text x="{name_w - 8}" y="{y + 15}" text-anchor="end" font-size="12" fill="#333">{escape(shown)}</text>'
            f'<rect x="{name_w}" y="{y + 3}" width="{_fmt(w)}" height="{row_h - 6}" fill="{colour(i)}">'
            f"<title>{escape(f'{name}: {short_number(value)} ({share:.1%})')}</title></rect>"
            f'<text x="{_fmt(name_w + w + 6)}" y="{y + 15}" font-size="12" fill="#333">{share:.1%}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def sparkline(values: Sequence[float], *, label: str, width: int = 120, height: int = 24) -> SafeString:
    """A tiny line of VALUES, for a table cell."""
    peak = max(values, default=0) or 1
    count = len(values)
    points = []
    for i, value in enumerate(values):
        x = (width - 2) * (i / (count - 1) if count > 1 else 0.5) + 1
        y = height - 2 - (height - 4) * (value / peak)
        points.append(f"{_fmt(x)},{_fmt(y)}")
    parts = _open(label, width, height, "sparkline")
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>')
    parts.append("</svg>")
    # A fixed size so a table of them keeps its row height.
    return mark_safe("".join(parts).replace('width="100%"', f'width="{width}" height="{height}"', 1))


def meter(fraction: float, *, label: str, width: int = 120, height: int = 12) -> SafeString:
    """A bar filled to FRACTION (0..1) of its width, for a table cell."""
    fraction = min(1.0, max(0.0, fraction))
    parts = _open(label, width, height, "meter")
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eee"/>')
    parts.append(f'<rect x="0" y="0" width="{_fmt(width * fraction)}" height="{height}" fill="{PALETTE[0]}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts).replace('width="100%"', f'width="{width}" height="{height}"', 1))
