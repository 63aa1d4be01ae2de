"""The Pareto plot: accuracy vs CPU latency of every measured subnet, the Pareto front and the library's levels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dynofa_ros.supernet.family import family_of, spec_from_dict
from dynofa_ros.supernet.library import SubnetLibrary


def pareto_title(search: dict[str, Any]) -> str:
    """The plot's title: the supernet family of the search's spec, its processor and what was measured."""
    family = family_of(spec_from_dict(search["spec"]))
    return (f"CIFAR-10 {family.title} subnets, batch-1 CPU latency on {search['processor']}\n"
            f"({len(search['points'])} measured subnets; val = {search['val_images']} held-out training images)")


def plot_pareto(search: dict[str, Any], library: SubnetLibrary | None, out: Path | str,
                profile: str | None = None) -> Path:
    """Write a PNG of val top-1 vs measured ``profile`` latency (default: the search's), front and levels, titled
    :func:`pareto_title`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profile = profile or search["primary_profile"]
    if profile != search["primary_profile"]:
        raise ValueError(f"the search measured its points on {search['primary_profile']}, not {profile}")
    points = search["points"]
    backend = search.get("backend", "torch")  # searches before backends were recorded timed eagerly
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for source, style in (("candidate", dict(c="0.6", marker="o", s=14, label="random subnets (val)")),
                          ("search", dict(c="tab:blue", marker="^", s=36, label="evolutionary search (val)"))):
        sel = [p for p in points if p["source"] == source]
        if sel:
            ax.scatter([p["cpu"]["p50_s"] * 1e3 for p in sel], [p["val_top1"] * 100 for p in sel], alpha=0.8,
                       **style)
    front = [points[i] for i in search["front"]]
    ax.plot([p["cpu"]["p50_s"] * 1e3 for p in front], [p["val_top1"] * 100 for p in front], "-", c="tab:orange",
            lw=1.5, drawstyle="steps-post", label="Pareto front (val)")
    if library is not None:
        lat = [lv.latency_for(profile, backend) for lv in library.levels]  # served as the search's points were
        if any(p is None for p in lat):
            raise ValueError(f"library levels lack {profile} {backend} latency")
        xs, ys = [p.p50_s * 1e3 for p in lat], [lv.top1 * 100 for lv in library.levels]
        ax.scatter(xs, ys, c="tab:red", marker="*", s=160, zorder=5, label=f"library levels ({library.eval_set})")
        for lv, x, y in zip(library.levels, xs, ys, strict=True):
            ax.annotate(lv.name, (x, y), textcoords="offset points", xytext=(6, -12), fontsize=9, c="tab:red")
    threads = search["cpu_threads"]
    ax.set_xlabel(f"batch-1 latency, median [ms] ({profile}, {backend}: {threads} thread{'s' * (threads > 1)})")
    ax.set_ylabel("top-1 accuracy [%]")
    ax.set_title(pareto_title(search), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
