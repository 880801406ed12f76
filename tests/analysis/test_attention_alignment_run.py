"""`python -m repro.analysis.attention_alignment` on a MICA run trained on the SYNTHETIC paired fixture: the record has
the A-distance of every unit and Corr. Acc against the spans recovered from the aligned file; Fig. 4 is drawn. With
re-processed words in the aligned file, the record's and Table 6's recovered / total words show the failure and
Corr. Acc counts the recovered words only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from repro import tables
from repro.analysis import attention_alignment as alignment
from repro.analysis import attention_alignment_run as alignment_run
from repro.analysis.attention_alignment import correlation_counts
from repro.data.fixtures_paired import write_paired_mult_pickles
from repro.results import read_record
from repro.train import run
from tests.conftest import compose_train

REPROCESSED = 3  # words of the test split whose aligned vectors are no frame interval's mean


def train_mica(root, reprocessed_words: int = 0):
    fixture = write_paired_mult_pickles(root / "data" / "mosi", dataset="mosi", n=(12, 4, 6),
                                        reprocessed_words=reprocessed_words)
    overrides = ["data=mosi_unaligned", "fusion=mica", "trainer.max_epochs=1", "data.batch_size=4",
                 "count_flops=false", "fusion.net.d=8", "fusion.net.heads=2", "fusion.net.layers=2",
                 "data.check_steps=false"]  # the SYNTHETIC fixture is shorter than MOSI
    run(compose_train(overrides, root / "run", root / "data"))
    assert read_record(root / "run" / "results.json")["status"] == "completed"
    return root / "run", fixture


@pytest.fixture(scope="module")
def mica_run(tmp_path_factory):
    return train_mica(tmp_path_factory.mktemp("mica_run"))


@pytest.fixture(scope="module")
def mica_run_reprocessed(tmp_path_factory):
    """A MICA run whose aligned test file has `REPROCESSED` words whose spans cannot be recovered."""
    return train_mica(tmp_path_factory.mktemp("mica_run_reprocessed"), reprocessed_words=REPROCESSED)


def test_alignment_record_and_figure(mica_run, tmp_path):
    run_dir, fixture = mica_run
    out, figure = tmp_path / "alignment.json", tmp_path / "fig4.png"
    assert alignment.main([str(run_dir), "--out", str(out), "--figure", str(figure)]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == "repro.alignment/1" and record["synthetic"] is True
    # a debug run's analysis is flagged too (tables refuse it)
    assert record["debug"] is json.loads((run_dir / "results.json").read_text())["debug"]
    per_unit = record["a_distance_per_unit"]
    assert set(per_unit) == {"text_with_audio", "text_with_vision", "audio_with_text", "audio_with_vision",
                             "vision_with_text", "vision_with_audio"}
    assert record["a_distance"] == pytest.approx(np.mean(list(per_unit.values())))
    # queries and keys are different projections of different modalities: a linear classifier tells them apart
    # (0 = indistinguishable; measured 1.14-1.31 over seeds 0-2), so capturing the same tensor twice would fail
    assert record["a_distance"] > 0.5
    # every word's span is recovered on the paired fixture, so Corr. Acc is over all real words: recomputed here
    # from the captured attention and the fixture's TRUE spans (not the recovered ones)
    assert set(record["corr_acc_per_unit"]) == {"text_with_vision", "text_with_audio"}
    assert record["corr_acc_missing"] is None
    _, capture, masks, _ = alignment_run.analyse(run_dir)
    expected = {}
    for unit, modality in alignment_run.CORR_UNITS.items():
        attention = torch.cat(capture.store[unit]["attention"]).numpy()
        correct, total = correlation_counts(attention, fixture.spans["test"][modality], masks[modality].numpy())
        assert (record["corr_acc_words"][unit]["correct"], record["corr_acc_words"][unit]["recovered"]) == (
            correct, total)
        expected[unit] = correct / total
    assert record["corr_acc_per_unit"] == pytest.approx(expected)
    assert record["corr_acc"] == pytest.approx(np.mean(list(expected.values())))
    words = record["corr_acc_words"]["text_with_vision"]
    assert words["recovered"] == words["words"] > 0
    assert record["words_recovered"] == {"text_with_vision": words["words"], "text_with_audio": words["words"]}
    assert record["words_total"] == words["words"]
    assert figure.is_file()


def test_unrecovered_words_are_counted_and_left_out_of_corr_acc(mica_run_reprocessed):
    run_dir, fixture = mica_run_reprocessed
    record, capture, masks, _ = alignment_run.analyse(run_dir)
    reprocessed = fixture.reprocessed["test"]
    assert reprocessed.sum() == REPROCESSED
    total = record["words_total"]
    assert total == int((fixture.spans["test"]["vision"][..., 0] >= 0).sum()) > REPROCESSED
    # the table's recovered / total columns show the failure: exactly the re-processed words are missing
    assert record["words_recovered"] == {"text_with_vision": total - REPROCESSED,
                                         "text_with_audio": total - REPROCESSED}
    assert record["corr_acc_missing"] is None
    for unit, modality in alignment_run.CORR_UNITS.items():
        counts = record["corr_acc_words"][unit]
        assert counts["words"] == total and counts["recovered"] == total - REPROCESSED
        # Corr. Acc counts only the recovered words: the true spans minus the re-processed words give the same
        # counts; with the re-processed words' true spans the denominator would be the total
        attention = torch.cat(capture.store[unit]["attention"]).numpy()
        key_mask = masks[modality].numpy()
        truth = fixture.spans["test"][modality]
        recovered_only = np.where(reprocessed[..., None], -1, truth)
        assert correlation_counts(attention, recovered_only, key_mask) == (counts["correct"], total - REPROCESSED)
        assert correlation_counts(attention, truth, key_mask)[1] == total
        assert record["corr_acc_per_unit"][unit] == pytest.approx(counts["correct"] / (total - REPROCESSED))


def test_table6_renders_recovered_and_total_words(mica_run_reprocessed, tmp_path):
    """mica_t6's columns read the record: the rendered table shows recovered < total words."""
    run_dir, _ = mica_run_reprocessed
    table = tables.load_table("mica_t6")
    row_dir = tables.table_dir(table, True, tmp_path) / "runs" / tables.slug(table.rows[0].label)
    out = row_dir / tables.repeat_dirname(tables.repeat_grid(table)[0]) / "alignment.json"
    out.parent.mkdir(parents=True)
    assert alignment.main([str(run_dir), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    total, recovered = record["words_total"], record["words_recovered"]["text_with_vision"]
    assert recovered == total - REPROCESSED
    md = tables.render_table("mica_t6", smoke=True, out_root=tmp_path)
    header = next(line for line in md.splitlines() if line.startswith("| Row"))
    cells = next(line for line in md.splitlines() if line.startswith(f"| {table.rows[0].label} "))
    columns = [c.strip() for c in header.strip("|").split("|")]
    values = dict(zip(columns, (c.strip() for c in cells.strip("|").split("|"))))
    assert values["Words recovered (vision)"] == str(recovered)
    assert values["Words recovered (audio)"] == str(total - REPROCESSED)
    assert values["Words (test)"] == str(total)
    assert "Words recovered" in md.split("|")[0]  # the note explains the columns


def test_alignment_refuses_a_run_without_crossmodal_units(tmp_path, capsys):
    assert alignment.main([str(tmp_path)]) == 2
    assert capsys.readouterr().out.startswith("error: ")
