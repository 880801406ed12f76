"""Paper tables: `python -m repro.tables list | run <table> | render <table>` (DESIGN.md, "Tables").

A table is `configs/table/<name>.yaml`: title, the paper it reproduces, the dataset, the repeats (seeds
and/or folds), common overrides, the columns (a metric of the results record), and rows (label,
overrides, the paper's numbers). `run` launches the missing runs of every row as one Hydra multirun per
row (`python train.py -m ...`, any launcher), skipping repeats whose completed `results.json` exists — so
an interrupted table resumes; a repeat stopped after an epoch continues from its `last.ckpt` (`train.py resume=`,
`repro.resume`) when it was started with the row's current overrides — then renders. `render` aggregates the
records (mean ± standard error, n) and writes Markdown, LaTeX and CSV beside the paper's numbers with the difference.

`repeats` may name any override, e.g. `{fold: [0, 1], protocol.select_on: [test, val]}` (folders
`fold_0_select_on_test`, …; `smoke.repeats` replaces them in SMOKE runs); a column with `where: {record path: value}`
counts only the matching records, so one table shows the two protocols as two columns (MSAF Table 1). A row whose
`backbone.init_from.<modality>` names a run (`{table:<name>}/runs/<row>/fold_${fold}_…`) is launched for a repeat only
when that run has completed (the pretrained-unimodal protocol; `needs` runs that table first); otherwise one line
says what is missing and the table exits non-zero.

Rows marked `external: true` are numbers a paper copied from elsewhere; rows with `pending: <reason>`
are ours but not runnable yet (the reason is printed); both show the paper's number only.
`--smoke` runs on SYNTHETIC fixtures with tiny budgets: it checks the machinery, its numbers mean nothing.

Which records count (issue 12; `repro.provenance`): a completed record counts for a row and repeat only when its
`identity` is the row's CURRENT overrides and repeat (the table's and row's overrides, the runner's and smoke
extras, the repeat values; canonical, without paths) and it is not a debug run. `run` moves any other completed
record aside to `<table>/stale/` (kept, never deleted), says so in one line and re-runs it; `render` leaves it out
and names it under the table. Whenever a counted record read SYNTHETIC data the render carries the SYNTHETIC
banner and no Δ column, whatever the flags.

A row with `select: {override, candidates, by, mode}` trains one run per candidate value of `override` per repeat
(in `runs/<row>/<override>_<value>/<repeat>`) and reports, per repeat, the candidate best on `by` — MFAS §3.3's
"top five architectures trained to completion, the best on validation reported". `--selection first` keeps the
first candidate only (the rank-1-only protocol).

Tables with `kind: search` (MFAS Tables 1 and 6) run `search.py` instead: one search per row and repeat
(resumable, in `runs/<row>/<repeat>`), pre-trained encoders shared by the rows of a repeat
(`pretrain/<repeat>`), columns read from each `search.json`. In any override, `{table:<name>}` stands for
that table's output folder (so a row can train the architecture another table's search found).

Tables with `kind: alignment` (MICA Table 6) train nothing: each row names `analyze: <folder of another table's
row>` and, per repeat, `python -m repro.analysis.attention_alignment <that run> --out <row>/<repeat>/alignment.json`
measures the trained model (A-distance, Corr. Acc); the columns read those records.

The package, by responsibility (imports go one way: cli → launching → planning → config; rendering → aggregation →
planning → config):
- `config`: load and validate a table's yaml; repeats, folders, `{table:…}` references, SMOKE overrides (data registry);
- `planning`: row units, the identity a counted record carries, each repeat's state, stale runs put aside;
- `launching`: the train.py multirun / resume, search.py and analysis commands, run per row; the preflight;
- `aggregation`: reading the counted records, `select` candidates, mean ± spread per row;
- `rendering`: Markdown / LaTeX / CSV / runs.csv / PNG, SYNTHETIC banner, Δ vs paper, notes;
- `cli`: `run_table` and `main` (`python -m repro.tables`, `repro-tables`).
Every name below is re-exported here, so `from repro.tables import …` is the interface.
"""

import subprocess  # noqa: F401  (tests patch `repro.tables.subprocess.run`, which launching calls)

from repro.tables.aggregation import (
    collect,
    column_value,
    commit_label,
    lookup,
    mean_se,
    run_line,
    select_best,
    usable_record,
)
from repro.tables.cli import main, report_blocked, run_table
from repro.tables.config import (
    RECORD_FILES,
    REPO_ROOT,
    SELECTIONS,
    SPREADS,
    TableError,
    candidate_dirname,
    expand_refs,
    load_table,
    raw_overrides,
    repeat_dirname,
    repeat_grid,
    repeat_key_name,
    row_selection,
    run_extra,
    slug,
    smoke_fixtures,
    smoke_overrides,
    table_dir,
    table_kind,
    table_names,
    table_repeats,
    table_spread,
    write_smoke_fixture,
)
from repro.tables.config import _write_pom_fixture as _write_pom_fixture  # tests/spine/test_cmu_pairs.py
from repro.tables.launching import (
    SEARCH_SCRIPT,
    TRAIN_SCRIPT,
    alignment_command,
    launch,
    preflight,
    resume_command,
    search_command,
    train_command,
)
from repro.tables.planning import (
    RowPlan,
    candidate_of,
    expected_identity,
    expected_overrides,
    missing_inputs,
    plan_rows,
    pretrained_inputs,
    put_aside,
    read_any_record,
    record_problem,
    resume_problem,
    row_units,
)
from repro.tables.rendering import (
    SYNTHETIC_BANNER,
    format_cells,
    has_paper,
    plot_table,
    render_table,
    row_notes,
    runs_csv,
)

__all__ = [  # by module, in the order the package describes them
    "REPO_ROOT", "RECORD_FILES", "TableError", "table_names", "load_table", "table_kind", "expand_refs",
    "raw_overrides", "slug", "table_repeats", "repeat_grid", "repeat_key_name", "repeat_dirname", "table_dir",
    "SPREADS", "table_spread", "SELECTIONS",
    "row_selection", "candidate_dirname", "smoke_fixtures", "write_smoke_fixture", "smoke_overrides", "run_extra",
    "RowPlan", "row_units", "candidate_of", "expected_overrides", "expected_identity", "record_problem",
    "resume_problem", "read_any_record", "pretrained_inputs", "missing_inputs", "plan_rows", "put_aside",
    "TRAIN_SCRIPT", "SEARCH_SCRIPT", "train_command", "search_command", "alignment_command", "resume_command",
    "launch", "preflight",
    "lookup", "column_value", "mean_se", "usable_record", "select_best", "commit_label", "run_line", "collect",
    "has_paper", "format_cells", "SYNTHETIC_BANNER", "row_notes", "render_table", "plot_table", "runs_csv",
    "run_table", "report_blocked", "main",
]
