"""One plotting helper for the learning curve of a training and the zoo's comparison."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_lines(lines: dict[str, pd.Series], path: Path, title: str, ylabel: str = "",
               dashed: tuple[str, ...] = (), log_y: bool = False) -> Path:
    """Each series against its index (epochs), one PNG; ``dashed`` names drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, series in lines.items():
        ax.plot(series.index, series.values, marker="o", markersize=3, label=name,
                linestyle="--" if name in dashed else "-")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(history: pd.DataFrame, path: Path, title: str) -> Path:
    """The course's learning-curve plot: every metric per epoch, train solid, valid dashed."""
    series = history.set_index("epoch")
    return plot_lines({c: series[c] for c in series.columns}, path, title,
                      dashed=tuple(c for c in series.columns if c.startswith("val_")))
