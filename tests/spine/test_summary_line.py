"""The one-line `[repro]` run summary stays short for many-label tasks (POM's per-trait metrics)."""

from __future__ import annotations

from repro.train import SUMMARY_METRICS, print_summary, summary_metrics


def test_few_metrics_are_all_shown():
    values = {"acc": 0.5, "f1": 0.25}
    assert summary_metrics(values) == (list(values.items()), 0)


def test_many_per_label_metrics_show_the_aggregates_and_a_count(capsys):
    traits = [f"trait{i}" for i in range(12)]
    test = {f"{family}/{name}": 0.1 for family in ("acc", "mae", "corr") for name in [*traits, "mean"]}
    shown, left_out = summary_metrics(test)
    assert [k for k, _ in shown] == ["acc/mean", "mae/mean", "corr/mean"] and left_out == len(test) - 3
    record = {"data": "pom", "fusion": "rmfn", "seed": 0, "fold": None, "wall_time_s": 1.0, "params": {"total": 7},
              "metrics": {"best_epoch": 2, "val": {"loss": 0.3}, "test": test}}
    print_summary(record)
    line = capsys.readouterr().out.strip()
    assert "test/acc/mean=0.1000" in line and "test/acc/trait0" not in line
    assert f"(+{len(test) - 3} test metrics in results.json)" in line and len(line) < 300
    assert SUMMARY_METRICS >= 3
