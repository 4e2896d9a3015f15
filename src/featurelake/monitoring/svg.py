"""Small inline SVG charts for the static report: no JavaScript, no CDN, readable offline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 40
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _frame(title: str, y_lo: float, y_hi: float, x_labels: Sequence[str], body: list[str]) -> str:
    ys = _scale(y_lo, y_hi, H - BOTTOM, TOP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#888"/>',
    ]
    for v in (y_lo, (y_lo + y_hi) / 2, y_hi):
        parts.append(f'<text x="{LEFT - 4}" y="{ys(v) + 4:.1f}" font-size="10" text-anchor="end">{_fmt(v)}</text>')
    if x_labels:
        step = max(1, len(x_labels) // 6)
        xs = _scale(0, max(len(x_labels) - 1, 1), LEFT + 8, W - RIGHT - 8)
        for i in range(0, len(x_labels), step):
            parts.append(
                f'<text x="{xs(i):.1f}" y="{H - BOTTOM + 14}" font-size="10" text-anchor="middle">'
                f"{escape(x_labels[i])}</text>"
            )
    return "".join([*parts, *body, "</svg>"])


def _bounds(values: Sequence[float], extra: Sequence[float] = ()) -> tuple[float, float]:
    finite = [v for v in (*values, *extra) if v is not None]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    band: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
) -> str:
    """Lines over ordered x labels, with an optional shaded band (e.g. outer quantiles); gaps for None."""
    flat = [v for s in series.values() for v in s if v is not None]
    if band:
        flat += [v for s in band for v in s if v is not None]
    y_lo, y_hi = _bounds(flat)
    xs = _scale(0, max(len(x_labels) - 1, 1), LEFT + 8, W - RIGHT - 8)
    ys = _scale(y_lo, y_hi, H - BOTTOM, TOP)
    body = []
    if band:
        pts = [(i, lo, hi) for i, (lo, hi) in enumerate(zip(*band, strict=True)) if lo is not None and hi is not None]
        if pts:
            upper = " ".join(f"{xs(i):.1f},{ys(hi):.1f}" for i, _, hi in pts)
            lower = " ".join(f"{xs(i):.1f},{ys(lo):.1f}" for i, lo, _ in reversed(pts))
            body.append(f'<polygon points="{upper} {lower}" fill="#1f77b4" fill-opacity="0.15"/>')
    for n, (name, values) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        dots = [(i, v) for i, v in enumerate(values) if v is not None]
        if len(dots) > 1:
            path = " ".join(f"{xs(i):.1f},{ys(v):.1f}" for i, v in dots)
            body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        body += [f'<circle cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="2.5" fill="{color}"/>' for i, v in dots]
        body.append(f'<text x="{LEFT + 8 + 90 * n}" y="{H - 8}" font-size="11" fill="{color}">{escape(name)}</text>')
    return _frame(title, y_lo, y_hi, x_labels, body)


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    threshold: float | None = None,
    highlight: Sequence[bool] | None = None,
) -> str:
    """Vertical bars (red where ``highlight``), with an optional dashed threshold line."""
    y_lo, y_hi = _bounds([0.0, *values], [threshold] if threshold is not None else [])
    y_lo = min(y_lo, 0.0)
    ys = _scale(y_lo, y_hi, H - BOTTOM, TOP)
    slot = (W - LEFT - RIGHT) / max(len(values), 1)
    body = []
    for i, v in enumerate(values):
        x, top = LEFT + i * slot + slot * 0.1, ys(max(v, 0.0))
        color = "#d62728" if highlight and highlight[i] else "#1f77b4"
        body.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{slot * 0.8:.1f}" height="{max(ys(0.0) - top, 0.5):.1f}" '
            f'fill="{color}"><title>{escape(labels[i])}: {_fmt(v)}</title></rect>'
        )
    if threshold is not None:
        y = ys(threshold)
        body.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    step = max(1, len(labels) // 8)
    shown = [escape(str(lbl))[:14] if i % step == 0 else "" for i, lbl in enumerate(labels)]
    body += [
        f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{H - BOTTOM + 14}" font-size="10" text-anchor="middle">{t}</text>'
        for i, t in enumerate(shown)
        if t
    ]
    return _frame(title, y_lo, y_hi, [], body)


def status_strip(title: str, labels: Sequence[str], states: Sequence[str]) -> str:
    """One colored square per run, oldest first: passed green, warned amber, failed red."""
    colors = {"passed": "#2ca02c", "warned": "#ff7f0e", "failed": "#d62728"}
    size, gap = 14, 3
    width = max(LEFT + len(states) * (size + gap) + RIGHT, 200)
    cells = [
        f'<rect x="{LEFT + i * (size + gap)}" y="6" width="{size}" height="{size}" fill="{colors.get(s, "#999")}">'
        f"<title>{escape(labels[i])}: {escape(s)}</title></rect>"
        for i, s in enumerate(states)
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="26" role="img">'
        f"<title>{escape(title)}</title>{''.join(cells)}</svg>"
    )
