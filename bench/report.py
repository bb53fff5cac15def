"""The harness's outputs from its report: the table on stdout and the PNG bar chart."""

from __future__ import annotations

from fuseflow.bench.common import optional

PEERS = ("numpy", "numexpr", "jax", "numba")


def format_time(seconds: float) -> str:
    """Three significant digits in s, ms, us or ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _peer_cell(row: dict, peer: str) -> str:
    if peer in row["times"]:
        ratio = row["ratio"].get(peer)
        return format_time(row["times"][peer]["median"]) + (f" {ratio:.2f}x" if ratio is not None else "")
    return "skipped" if peer in row["skipped"] else "-"


def _cells(row: dict, peers: list[str]) -> list[str]:
    ours = row["times"].get("fuseflow")
    cells = [row["workload"], row["case"],
             format_time(ours["median"]) if ours else "skipped", format_time(ours["min"]) if ours else ""]
    cells += [_peer_cell(row, p) for p in peers]
    if "GBps" in row:
        cells += [f"{row['GBps']:.1f}", f"{100 * row['bandwidth_share']:.0f}%"]
    else:
        cells += ["", ""]
    return cells


def _notes(report: dict) -> list[str]:
    """One line per skipped runner, saying why (a peer not installed, fuseflow.jit not merged)."""
    notes = []
    for row in report["rows"]:
        notes += [f"  {row['workload']} {name}: {why}" for name, why in row["skipped"].items()]
    return notes


def _targets(report: dict) -> list[str]:
    """One line per case the issue sets a goal for: fuseflow's median against it."""
    lines = []
    for row in (r for r in report["rows"] if r["target_s"] is not None):
        goal = f"{row['workload']} {row['case']}: target <= {format_time(row['target_s'])}"
        if row["status"] == "skipped":
            lines.append(f"  {goal}: skipped")
        else:
            verdict = "met" if row["target_met"] else "missed"
            lines.append(f"  {goal}: {format_time(row['times']['fuseflow']['median'])}, {verdict}")
    return lines


def format_table(report: dict) -> str:
    """The results as an aligned text table with a legend and the reasons for skipped runners."""
    rows = report["rows"]
    peers = [p for p in PEERS if any(p in r["times"] or p in r["skipped"] for r in rows)]
    header = ["workload", "case", "fuseflow", "min"] + [f"{p} (ratio)" for p in peers] + ["GB/s", "% copy"]
    table = [header] + [_cells(r, peers) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    legend = "times are medians per call; ratio = peer time / fuseflow time (above 1: fuseflow is faster)"
    lines = [f"copy bandwidth {report['copy_bandwidth_GBps']:.1f} GB/s (np.copyto, read + write); {legend}"]
    lines += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
              for line in table]
    notes, targets = _notes(report), _targets(report)
    return "\n".join(lines + (["skipped:"] + notes if notes else []) + (["targets:"] + targets if targets else []))


def write_png(report: dict, path: str) -> str:
    """Draws fuseflow's speed-up over numpy and each peer per case (log scale) into `path`
    when matplotlib imports; returns the line saying what happened."""
    matplotlib = optional("matplotlib")
    if matplotlib is None:
        return "chart: not written (matplotlib not installed; pip install matplotlib)"
    matplotlib.use("Agg")  # no display needed: the chart only goes to a file
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["ratio"]]
    if not rows:
        return "chart: not written (no case has a ratio to draw)"
    peers = [p for p in PEERS if any(p in r["ratio"] for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4.5))
    width = 0.8 / max(1, len(peers))
    for k, peer in enumerate(peers):
        xs = [i + k * width for i, r in enumerate(rows) if peer in r["ratio"]]
        ax.bar(xs, [r["ratio"][peer] for r in rows if peer in r["ratio"]], width, label=f"vs {peer}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([f"{r['workload']}\n{r['case']}" for r in rows], fontsize=7)
    ax.set_ylabel("fuseflow speed-up (peer time / fuseflow time)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"chart: {path}"
