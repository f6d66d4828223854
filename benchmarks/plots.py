"""PNG plots of benchmark JSON files: OPE success and precision curves, effort bars.

matplotlib is the `bench` extra; it is imported here only, so the benchmarks' numbers never
depend on it being installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():  # noqa: ANN202 - matplotlib's module has no useful annotation
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no Qt
    import matplotlib.pyplot as plt

    return plt


def ope_curves(ope: dict, out_dir: Path) -> list[Path]:
    """Success (IoU threshold) and precision (centre error) plots, mean over sequences."""
    plt = _pyplot()
    written = []
    specs = [
        ("success_curve", np.linspace(0, 1, 21), "overlap threshold (IoU)", "success rate", "auc", "AUC"),
        ("precision_curve", np.arange(51), "location error threshold (px)", "precision", "precision", "P@20"),
    ]
    for curve_key, xs, xlabel, ylabel, score_key, score_name in specs:
        fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
        ranked = sorted(ope.items(), key=lambda item: -item[1]["mean"][score_key])
        for name, result in ranked:
            curves = np.array([seq[curve_key] for seq in result["sequences"].values()])
            ax.plot(xs, curves.mean(axis=0), label=f"{name} [{score_name} {result['mean'][score_key]:.1f}]", linewidth=2)
        if curve_key == "precision_curve":
            ax.axvline(20, color="0.6", linestyle=":", linewidth=1)
        ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.02), title=f"OPE {ylabel}, mean of {len(curves)} sequences")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if curve_key == "success_curve" else "lower right", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"ope_{curve_key.split('_')[0]}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def effort_bars(effort: dict, out_dir: Path) -> Path:
    """Mean manual boxes per 100 frames per method, one group per tau."""
    plt = _pyplot()
    taus = list(effort["mean"])
    methods = list(effort["mean"][taus[0]])
    fig, ax = plt.subplots(figsize=(6.5, 4.0), dpi=110)
    width = 0.8 / len(taus)
    x = np.arange(len(methods))
    for i, tau in enumerate(taus):
        values = [effort["mean"][tau][m] for m in methods]
        bars = ax.bar(x + (i - (len(taus) - 1) / 2) * width, values, width, label=f"tau = {tau}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, methods)
    ax.set(ylabel="manual boxes per 100 frames (lower is better)", title="Annotation effort, simulated annotator")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out_dir / "effort.png"
    fig.savefig(path)
    plt.close(fig)
    return path
