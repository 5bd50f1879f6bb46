"""Small inline-SVG charts (scatter, bars, stacked bars) drawn as strings: the report needs no JS library."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 320
MARGIN = dict(left=64, right=40, top=16, bottom=46)
STATUS_COLOURS = {"baseline": "#2f6fdf", "keep": "#1a9c47", "discard": "#9aa0a6", "pruned": "#b07cd8",
                  "failed": "#d93025", "interrupted": "#e8710a", "running": "#5f6368"}


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    colour: str
    tip: str
    hollow: bool = False
    label: str = ""


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values from at or below lo to at or above hi."""
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= step * mult * (1 + 1e-9):
            step *= mult
            break
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, step: float | None = None) -> str:
    """A tick's text, with as many decimals as the step between ticks needs (0.0022 vs 0.00225)."""
    if value == 0:
        return "0"
    if step:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9) + (1 if round(step / 10 ** math.floor(
            math.log10(step) + 1e-9), 6) == 2.5 else 0))
        return f"{value:,.{decimals}f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _open(label: str, height: int = HEIGHT) -> list[str]:
    return [f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">']


def scatter(points: list[Point], *, label: str, x_label: str, y_label: str,
            lines: list[tuple[list[tuple[float, float]], str, bool]] = (), integer_x: bool = False) -> str:
    """Points with tooltips; each line is (points, colour, as steps)."""
    if not points:
        return '<p class="empty">nothing to plot yet</p>'
    xs = [p.x for p in points] + [x for line, _, _ in lines for x, _ in line]
    ys = [p.y for p in points] + [y for line, _, _ in lines for _, y in line]
    x_ticks = nice_ticks(min(xs), max(xs)) if not integer_x else _integer_ticks(min(xs), max(xs))
    y_ticks = nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    left, right = MARGIN["left"], WIDTH - MARGIN["right"]
    top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - y0) / ((y1 - y0) or 1) * (bottom - top)

    out = _open(label)
    out += _axes(x_ticks, y_ticks, sx, sy, x_label, y_label)
    for line, colour, steps in lines:
        coords: list[tuple[float, float]] = []
        for i, (x, y) in enumerate(line):
            if steps and i:
                coords.append((sx(x), sy(line[i - 1][1])))
            coords.append((sx(x), sy(y)))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" opacity="0.7"/>')
    for p in points:
        fill = "white" if p.hollow else p.colour
        out.append(f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="5" fill="{fill}" stroke="{p.colour}" '
                   f'stroke-width="2"><title>{escape(p.tip)}</title></circle>')
        if p.label:
            out.append(f'<text x="{sx(p.x) + 7:.1f}" y="{sy(p.y) - 7:.1f}" class="pt">{escape(p.label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _integer_ticks(lo: float, hi: float) -> list[float]:
    ticks = nice_ticks(lo, hi)
    step = max(1, round(ticks[1] - ticks[0])) if len(ticks) > 1 else 1
    start = math.floor(lo)
    return [float(v) for v in range(start, int(math.ceil(hi)) + step, step)]


def _axes(x_ticks, y_ticks, sx, sy, x_label: str, y_label: str) -> list[str]:
    left, right = MARGIN["left"], WIDTH - MARGIN["right"]
    top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"]
    out = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" class="axis"/>']
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else None
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else None
    for t in x_ticks:
        out.append(f'<line x1="{sx(t):.1f}" y1="{bottom}" x2="{sx(t):.1f}" y2="{bottom + 5}" class="axis"/>'
                   f'<text x="{sx(t):.1f}" y="{bottom + 18}" text-anchor="middle">{tick_label(t, x_step)}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{right}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{left - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{tick_label(t, y_step)}</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{HEIGHT - 8}" text-anchor="middle" class="label">'
               f'{escape(x_label)}</text>')
    out.append(f'<text x="16" y="{(top + bottom) / 2}" text-anchor="middle" class="label" '
               f'transform="rotate(-90 16 {(top + bottom) / 2})">{escape(y_label)}</text>')
    return out


def bars(rows: list[tuple[str, float, str]], *, label: str, unit: str, colour: str = "#2f6fdf") -> str:
    """Horizontal bars: (name, value, tooltip) per row, the value printed at the bar's end."""
    if not rows:
        return '<p class="empty">nothing to plot yet</p>'
    return stacked_bars([(name, [(value, colour, tip)]) for name, value, tip in rows], label=label, unit=unit)


def stacked_bars(rows: list[tuple[str, list[tuple[float, str, str]]]], *, label: str, unit: str = "") -> str:
    """Horizontal stacked bars: per row a name and (value, colour, tooltip) segments."""
    if not rows:
        return '<p class="empty">nothing to plot yet</p>'
    name_w, row_h = 220, 26
    height = MARGIN["top"] + row_h * len(rows) + 24
    biggest = max(sum(v for v, _, _ in segs) for _, segs in rows) or 1.0
    span = WIDTH - name_w - 90
    out = _open(label, height)
    for i, (name, segments) in enumerate(rows):
        y = MARGIN["top"] + i * row_h
        out.append(f'<text x="{name_w - 8}" y="{y + 16}" text-anchor="end">{escape(name)}</text>')
        x = float(name_w)
        for value, colour, tip in segments:
            width = value / biggest * span
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{max(width, 0.5):.1f}" height="{row_h - 8}" '
                       f'fill="{colour}"><title>{escape(tip)}</title></rect>')
            x += width
        total = sum(v for v, _, _ in segments)
        out.append(f'<text x="{x + 6:.1f}" y="{y + 16}">{tick_label(total)}{escape(unit)}</text>')
    out.append("</svg>")
    return "\n".join(out)
