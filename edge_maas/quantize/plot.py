"""The per-layer table as a picture: SNR per layer in op order, worst layers labelled (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from edge_maas.quantize.report import QuantizationReport

_EXACT_DB = 100.0  # where layers with no error at all are drawn


def plot_layers(report: QuantizationReport, path: str | Path, title: str = "") -> Path:
    """Write a PNG of each layer's SNR (dB, higher is better) to ``path``; the 5 worst layers are labelled.
    Errors: ImportError (matplotlib missing), OSError (path not writable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report.layers
    snr = [_EXACT_DB if r.snr_db is None else max(r.snr_db, -10.0) for r in layers]
    colors = ["tab:orange" if r.dtype == "int16" else "tab:blue" for r in layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(layers) + 2), 4.2), dpi=100)
    ax.bar(range(len(layers)), snr, color=colors)
    ax.set_xticks(range(len(layers)), [f"{r.index} {r.op}" for r in layers], rotation=90, fontsize=7)
    ax.set_ylabel("SNR of dequantized output vs float (dB)")
    ax.set_title(title or f"per-layer error, recipe {report.recipe}, {report.layer_samples} samples", fontsize=10)
    worst = {r.index for r in report.worst_layers(5) if r.snr_db is not None}
    for x, (r, y) in enumerate(zip(layers, snr)):
        if r.index in worst:
            ax.annotate(f"{y:.1f}", (x, y), ha="center", va="bottom", fontsize=7, color="tab:red")
    if any(r.dtype == "int16" for r in layers):
        ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color="tab:blue"), plt.Rectangle((0, 0), 1, 1, color="tab:orange")],
                  labels=["int8", "int16 (a16w8)"], fontsize=8)  # fmt: skip
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
