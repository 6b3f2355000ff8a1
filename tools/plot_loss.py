#!/usr/bin/env python3
"""Draw a textual-inversion loss CSV as an SVG line plot, with the standard library only.

Reads the `textual_inversion_loss.csv` a training run writes (A1111's columns:
`step,epoch,epoch_step,loss,learn_rate`) and writes an SVG that GitHub renders inline: the
loss of every row as a thin line, and its moving average over `--window` rows as a thick one
(a single step's loss depends on the random timestep drawn, so the raw curve is mostly noise;
the average shows the trend, as A1111's own loss plot does).

    python3 tools/plot_loss.py textual_inversion/2026-11-25/red-disc/textual_inversion_loss.csv \
        docs/images/loss.svg --title "red-disc, bundled tiny model, 300 steps"
"""

import argparse
import csv
import math
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 44


def read_rows(path):
    """(step, loss) pairs of the CSV, rows with a non-finite loss left out."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                step, loss = int(row["step"]), float(row["loss"])
            except (KeyError, ValueError):
                continue
            if math.isfinite(loss):
                rows.append((step, loss))
    return rows


def moving_average(values, window):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(t)
        t += step
    return ticks


def polyline(points, colour, width):
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-linejoin="round" points="{coords}"/>')


def render(rows, window, title):
    steps = [s for s, _ in rows]
    losses = [l for _, l in rows]
    smooth = moving_average(losses, window)
    yticks = nice_ticks(min(losses), max(losses))
    xticks = nice_ticks(min(steps), max(steps))
    x0, x1 = xticks[0], xticks[-1]
    y0, y1 = yticks[0], yticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(step):
        return LEFT + (step - x0) / (x1 - x0) * plot_w

    def py(loss):
        return TOP + (1 - (loss - y0) / (y1 - y0)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for t in yticks:
        y = py(t)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in xticks:
        x = px(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                     f'stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{t:g}</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
                 f'fill="none" stroke="#888"/>')
    parts.append(polyline([(px(s), py(l)) for s, l in rows], "#9ecae1", 1))
    parts.append(polyline([(px(s), py(l)) for s, l in zip(steps, smooth)], "#08519c", 2.5))
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" '
                 f'text-anchor="middle">step</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2})">loss</text>')
    legend_x = WIDTH - RIGHT - 190
    parts.append(f'<line x1="{legend_x}" x2="{legend_x + 20}" y1="{TOP + 14}" '
                 f'y2="{TOP + 14}" stroke="#9ecae1"/>')
    parts.append(f'<text x="{legend_x + 26}" y="{TOP + 18}">loss per step</text>')
    parts.append(f'<line x1="{legend_x}" x2="{legend_x + 20}" y1="{TOP + 30}" '
                 f'y2="{TOP + 30}" stroke="#08519c" stroke-width="2.5"/>')
    parts.append(f'<text x="{legend_x + 26}" y="{TOP + 34}">mean of {window} steps</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="textual_inversion_loss.csv of a training run")
    parser.add_argument("svg", help="where to write the plot")
    parser.add_argument("--window", type=int, default=20, help="moving-average length (rows)")
    parser.add_argument("--title", default="textual inversion loss")
    args = parser.parse_args()
    rows = read_rows(args.csv)
    if len(rows) < 2:
        sys.exit(f"{args.csv}: fewer than two rows with a finite loss")
    with open(args.svg, "w", encoding="utf-8") as f:
        f.write(render(rows, max(1, args.window), args.title))


if __name__ == "__main__":
    main()
