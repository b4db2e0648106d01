"""Draws bench/results/latest.png from bench/results/latest.json (written by
meshguard-bench): Envoy CPU µs per request per configuration, median with
min–max over the rounds. Run by scripts/bench with the project's .venv."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results: Path) -> None:
    data = json.loads((results / "latest.json").read_text())
    rows = data.get("plugins") or []
    if not rows:
        print("plot: no plugin figures in latest.json", file=sys.stderr)
        return
    names = [r["name"] for r in rows]
    median = [r["cpu_us"]["median"] for r in rows]
    low = [max(0.0, r["cpu_us"]["median"] - r["cpu_us"]["min"]) for r in rows]
    high = [max(0.0, r["cpu_us"]["max"] - r["cpu_us"]["median"]) for r in rows]
    colors = []
    for name in names:
        if name.startswith("bare"):
            colors.append("#888888")
        elif name.startswith("native"):
            colors.append("#d08c2c")
        elif "baseline" in name:
            colors.append("#9ab8d8")
        else:
            colors.append("#2c6fb0")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, median, xerr=[low, high], color=colors, capsize=3)
    ax.set_yticks(y, names)
    bare = median[0]
    for yi, m, h in zip(y, median, high):
        ax.text(m + h + 1.5, yi, f"{m:.1f} µs ({m / bare:.2f}×)", va="center", fontsize=8)
    ax.axvline(bare, color="#888888", linestyle=":", linewidth=1)
    ax.set_xlabel("Envoy CPU µs per request (median, min–max)")
    ax.set_title(f"Meshguard vs bare and native Envoy\n{data.get('date', '')}, {data.get('machine', '')}",
                 fontsize=9)
    ax.set_xlim(0, max(m + h for m, h in zip(median, high)) * 1.3)
    fig.tight_layout()
    out = results / "latest.png"
    fig.savefig(out, dpi=120)
    print(f"bench: chart written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results")
