"""Shared plot conventions: log axes with units, legends by family, chance lines, byte-stable files."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.scores import atomic_write  # noqa: E402

FAMILY_COLORS = {
    "pythia": "#1f77b4", "pythia-deduped": "#17becf", "opt": "#d62728", "cerebras-gpt": "#2ca02c",
    "bloom": "#9467bd", "llama-2": "#ff7f0e",
}
AXIS_LABELS = {
    "compute_flops": "training compute C (FLOPs, log scale)",
    "params": "parameters N (log scale)",
    "tokens": "training tokens D (log scale)",
}


def family_color(family: str) -> str:
    if family in FAMILY_COLORS:
        return FAMILY_COLORS[family]
    palette = plt.get_cmap("tab20").colors
    return matplotlib.colors.to_hex(palette[sum(map(ord, family)) % len(palette)])


def save(fig, path) -> None:
    """Write a PNG atomically, without the metadata that would make bytes differ between runs."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None},
                                               bbox_inches="tight"))
    plt.close(fig)
