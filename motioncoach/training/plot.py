"""The training curve: loss and eval_loss against step, as a PNG."""

from __future__ import annotations

from pathlib import Path


def plot_losses(history: list[dict], dest_png: Path) -> Path:
    """Draw loss and eval_loss per step from read_history() output into dest_png."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    dest_png = Path(dest_png)
    dest_png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for key, style in (("loss", "-"), ("eval_loss", "o--")):
            points = [(p["step"], p[key]) for p in history if key in p]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, style, label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("LoRA fine-tuning")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        fig.tight_layout()
        fig.savefig(dest_png)
    finally:
        plt.close(fig)
    return dest_png
