"""Rendering a table: Markdown, LaTeX, CSV, the per-run `runs.csv` and a bar chart, beside the paper's numbers.

Ours as mean ± spread, the paper's number and Δ = ours − paper; whenever a counted record read SYNTHETIC data the
SYNTHETIC banner and no Δ, whatever the flags; notes naming the records not counted and each `select` row's choice.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
import time
from pathlib import Path

from omegaconf import DictConfig

from repro.results import atomic_write_text, save_figure
from repro.tables.aggregation import collect
from repro.tables.config import SPREADS, load_table, table_dir, table_kind, table_repeats, table_spread


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def has_paper(table: DictConfig, key: str) -> bool:
    return any((row.get("paper") or {}).get(key) is not None for row in table.rows)


def format_cells(table: DictConfig, row: dict, show_delta: bool = True) -> list[str]:
    """Ours (mean ± s.e.), and where the paper reports the column, the paper's number and (unless the table
    stands on SYNTHETIC data, where it is noise) the difference."""
    out = []
    for col in table.columns:
        cell = row["cells"][col.key]
        scale, digits = float(col.get("scale", 1.0)), int(col.get("digits", 2))
        ours = "–"
        if cell["n"]:
            ours = _fmt(cell["mean"] * scale, digits)
            if cell["n"] > 1 and cell["se"] > 0:
                ours += f" ± {_fmt(cell['se'] * scale, digits)}"
        out.append(ours)
        if not has_paper(table, col.key):
            continue
        out.append(_fmt(cell["paper"], digits) if cell["paper"] is not None else "–")
        if show_delta:
            delta = "–"
            if cell["n"] and cell["paper"] is not None:
                delta = f"{cell['mean'] * scale - float(cell['paper']):+.{digits}f}"
            out.append(delta)
    return out

SYNTHETIC_BANNER = ("> SYNTHETIC: records under this table read SYNTHETIC fixture data{budget}; the numbers check the "
                    "machinery only, are not a reproduction, and no Δ to the paper is shown.")


def row_notes(table: DictConfig, rows: list[dict]) -> list[str]:
    """One line per stale or debug record that was not counted, and per `select` row what it chose."""
    lines = []
    for row in rows:
        for why in row["stale"]:
            lines.append(f"- Not counted, row '{row['label']}' {why} — `python -m repro.tables run {table.name}` "
                         "re-runs it.")
        spec = next((r.select for r in table.rows if r.label == row["label"] and r.get("select")), None)
        if spec is not None:
            chosen = ", ".join(f"{rep} → {c}" for rep, c in row["chosen"].items()) or "–"
            lines.append(f"- Row '{row['label']}': per repeat the candidate of {spec.override} with the best "
                         f"{spec.by} ({spec.get('mode', 'max')}) is reported; chosen: {chosen}.")
            if row["incomplete"]:
                lines.append(f"- Row '{row['label']}': not counted yet for {', '.join(row['incomplete'])} "
                             "(not every candidate has a record).")
    return lines + ([""] if lines else [])


def render_table(name: str, smoke: bool = False, out_root: Path = Path("outputs"), selection: str = "best") -> str:
    table = load_table(name)
    rows = collect(table, smoke, out_root, selection)
    synthetic = smoke or any(r["synthetic"] for r in rows)  # whatever the flags: the records say what they read
    header = ["Row"]
    for col in table.columns:
        if has_paper(table, col.key):
            header += [f"{col.label} (ours)", f"{col.label} (paper)"] + ([] if synthetic else ["Δ"])
        else:
            header.append(col.label)
    header.append("n")
    body = []
    for row in rows:
        n = max((c["n"] for c in row["cells"].values()), default=0)
        label = row["label"] + (" *(ext)*" if row["kind"] == "external" else "")
        if row["kind"] == "pending":
            label += f" *(pending: {row['pending']})*"
        body.append([label, *format_cells(table, row, not synthetic), str(n) if row["kind"] == "ours" else "–"])
    notes = [f"**{table.title}**", ""]
    if synthetic:
        notes += [SYNTHETIC_BANNER.format(budget=" with a tiny SMOKE budget" if smoke else ""), ""]
    if table.get("note"):
        notes += [str(table.note).strip(), ""]
    notes += row_notes(table, rows)
    protocols = sorted({p for r in rows for p in r["protocols"]})
    with_delta = any(has_paper(table, col.key) for col in table.columns) and not synthetic
    selected = ("" if table_kind(table) in ("search", "alignment") else
                f"; checkpoint selected on {', '.join(protocols) or '–'}")
    repeats = table_repeats(table, smoke)
    notes += [f"Ours: mean ± {SPREADS[table_spread(table)]} over the repeats {repeats}"
              + selected + ("; Δ = ours − paper." if with_delta else "."), ""]
    commits = sorted({c for r in rows for c in r["commits"]})
    counted = sum(len(r["runs"]) for r in rows)  # every counted record (a `where` column sees only some)
    notes += [f"Rendered {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {counted} records made at "
              f"commit {', '.join(commits) or '–'}.", ""]
    md = "\n".join(notes) + "\n" + _markdown(header, body)
    out = table_dir(table, smoke, out_root)
    atomic_write_text(out.with_suffix(".md"), md + "\n")
    atomic_write_text(out.with_suffix(".csv"), _csv(header, body))
    atomic_write_text(out.with_suffix(".runs.csv"), runs_csv(table, rows))
    atomic_write_text(out.with_suffix(".tex"), _latex(table.title, header, body))
    plot_table(table, rows, out.with_suffix(".png"), synthetic)
    return md


def plot_table(table: DictConfig, rows: list[dict], path: Path, synthetic: bool) -> None:
    """Bar chart of the first column: ours (mean ± s.e.) per row, the paper's number as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = table.columns[0]
    scale = float(col.get("scale", 1.0))
    labels = [r["label"] for r in rows]
    cells = [r["cells"][col.key] for r in rows]
    means = [c["mean"] * scale if c["n"] else 0.0 for c in cells]
    errors = [c["se"] * scale if c["n"] > 1 and not math.isnan(c["se"]) else 0.0 for c in cells]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, means, xerr=errors, color="tab:blue", alpha=0.6, label="ours (mean ± s.e.)")
    runs = [(yi, v * scale) for yi, c in zip(y, cells) for v in c["values"]]
    if runs:
        ax.scatter([v for _, v in runs], [yi for yi, _ in runs], s=12, color="tab:blue", zorder=3, label="each run")
    paper = [(yi, float(c["paper"])) for yi, c in zip(y, cells) if c["paper"] is not None]
    if paper:
        ax.scatter([p for _, p in paper], [yi for yi, _ in paper], color="black", marker="x", zorder=3, label="paper")
    ax.set_yticks(y, labels)
    ax.set_xlabel(col.label)
    finite = [m for m in means if m] + [p for _, p in paper] + [v for _, v in runs]
    if finite:
        margin = 0.05 * max(abs(v) for v in finite)  # 5 % of the scale: percentages and fractions alike
        ax.set_xlim(max(0.0, min(finite) - margin), max(finite) + margin)
    title = ("SYNTHETIC fixture data — " if synthetic else "") + str(table.title)
    fig.suptitle(textwrap.fill(title, 80), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def runs_csv(table: DictConfig, rows: list[dict]) -> str:
    """Every counted run, one line each (the per-seed evidence behind the means)."""
    keys = ["repeat", "commit", *(col.key for col in table.columns), "best_epoch", "synthetic"]
    return _csv(["row", *keys], [[row["label"], *(run.get(k) for k in keys)] for row in rows for run in row["runs"]])


def _csv(header, body) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(body)
    return buf.getvalue()


def _latex(title, header, body) -> str:
    def esc(s: str) -> str:
        return (s.replace("\\", "\\textbackslash{}").replace("&", "\\&").replace("%", "\\%").replace("_", "\\_")
                .replace("#", "\\#").replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("*", ""))
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{esc(title)}}}",
             "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
             " & ".join(esc(h) for h in header) + " \\\\", "\\midrule"]
    lines += [" & ".join(esc(c) for c in row) + " \\\\" for row in body]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)
