"""The golden report's three plots, drawn by matplotlib and returned as inline ``<svg>`` text.

The report is one file that is kept and mailed around, so a plot is markup inside it, never a
picture it points at. matplotlib is imported here only when a plot is drawn: the CLI and the
service import ``eval`` without paying for it, and the Agg backend is chosen at that moment
so nothing ever tries to open a window on a server.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.eval_runs import EvalRun

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Fixed colours so two reports of the same runs are byte for byte the same, and a
# configuration keeps its colour from one plot to the next.
PALETTE = ("#3b6ea5", "#e0883a", "#5a9e5a", "#c0504d", "#8064a2", "#4bacc6", "#9b7b4f", "#7f7f7f")
OUTCOMES = (("answered", "answered", "#3b6ea5"), ("not_found", "not found", "#9e9e9e"),
            ("unverified", "unverified", "#e0883a"))
QUALITY = (("citation_precision", "citation\nprecision"), ("citation_recall", "citation\nrecall"),
           ("facts_recall", "facts\nrecall"), ("token_f1", "token F1"), ("similarity", "similarity"))


def plots(runs: Sequence[EvalRun]) -> list[tuple[str, str]]:
    """(caption, svg) for each plot, drawn from ``runs`` (callers pass the ones with figures)."""
    if not runs:
        return []
    import matplotlib

    matplotlib.use("Agg")
    # rc_context rather than rcParams[...] = ...: the salt and the rest hold while these plots
    # are drawn and do not leak into other users of matplotlib in the same process.
    with matplotlib.rc_context({  # type: ignore[arg-type]
        "svg.hashsalt": "enclave",  # ids derived from this, not from a random salt: deterministic
        "svg.fonttype": "none",  # text stays text: no glyph outlines, searchable, far smaller
        "text.parse_math": False,  # a configuration named "a$b" is a name, not mathtext
        "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
    }):
        labels = _labels(runs)
        return [
            ("Outcomes by what was expected: answerable questions should be answered, "
             "unanswerable ones not found.", _svg(_outcomes(runs, labels), "g1-")),
            ("Citations and answer quality.", _svg(_quality(runs, labels), "g2-")),
            ("Latency per answer.", _svg(_latency(runs, labels), "g3-")),
        ]


def _labels(runs: Sequence[EvalRun]) -> list[str]:
    names = [r.config for r in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{r.config} {r.run_id[:8]}" for r in runs]  # the same configuration run twice


def _value(figures: dict[str, Any], key: str) -> float:
    value = figures.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan  # matplotlib draws no bar for NaN: missing stays visibly missing
    return float(value)


def _bars(ax: Axes, groups: int, series: Sequence[tuple[str, list[float], str]]) -> None:
    width = 0.8 / max(len(series), 1)
    for j, (label, heights, color) in enumerate(series):
        offset = (j - (len(series) - 1) / 2) * width
        ax.bar([i + offset for i in range(groups)], heights, width, label=label, color=color)


def _ticks(ax: Axes, labels: Sequence[str], slant: bool = True) -> None:
    slant = slant and len(labels) > 3  # configuration names are long; side by side they overlap
    ax.set_xticks(range(len(labels)), list(labels), rotation=20 if slant else 0,
                  ha="right" if slant else "center")


def _legend(ax: Axes) -> None:
    # Outside the axes, on the right: inside, it would hide whichever bar reaches 100%.
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _percent(ax: Axes) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _outcomes(runs: Sequence[EvalRun], labels: Sequence[str]) -> Figure:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, side in zip(axes, ("answerable", "unanswerable"), strict=True):
        _bars(ax, len(runs), [(name, [_value(r.figures, f"{side}_{key}") for r in runs], color)
                              for key, name, color in OUTCOMES])
        _ticks(ax, labels)
        _percent(ax)
        ax.set_title(f"expected {side}")
    _legend(axes[1])
    fig.tight_layout()
    return fig


def _quality(runs: Sequence[EvalRun], labels: Sequence[str]) -> Figure:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.4))
    _bars(ax, len(QUALITY), [(label, [_value(r.figures, key) for key, _ in QUALITY],
                              PALETTE[i % len(PALETTE)]) for i, (r, label) in enumerate(zip(
                                  runs, labels, strict=True))])
    _ticks(ax, [name for _, name in QUALITY], slant=False)
    _percent(ax)
    _legend(ax)
    fig.tight_layout()
    return fig


def _latency(runs: Sequence[EvalRun], labels: Sequence[str]) -> Figure:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.0))
    _bars(ax, len(runs), [("p50", [_value(r.figures, "latency_p50_s") for r in runs], "#3b6ea5"),
                          ("p95", [_value(r.figures, "latency_p95_s") for r in runs], "#e0883a")])
    _ticks(ax, labels)
    ax.set_ylabel("seconds")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    _legend(ax)
    fig.tight_layout()
    return fig


def _svg(fig: Figure, prefix: str) -> str:
    import matplotlib.pyplot as plt

    try:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})  # no timestamp in the output
    finally:
        plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # the XML prolog and DOCTYPE are not allowed inside HTML
    # The RDF metadata names external vocabularies by URL; the report refers to nothing outside.
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return _scope_ids(text, prefix).strip()


def _scope_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and each reference to it): three plots share one HTML document, and
    matplotlib derives ids from content, so identical tick markers would collide."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def scoped(m: re.Match[str]) -> str:
        return m.group(1) + prefix + m.group(2) if m.group(2) in ids else m.group(0)

    return re.sub(r'(\bid="|#)([\w.-]+)', scoped, svg)
