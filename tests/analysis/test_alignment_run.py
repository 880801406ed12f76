"""`python -m repro.analysis.alignment` on a MICA run trained on the SYNTHETIC paired fixture: the record has the
A-distance of every unit and Corr. Acc against the spans recovered from the aligned file; Fig. 4 is drawn."""

from __future__ import annotations

import json

import pytest

from repro.analysis import alignment
from repro.data.fixtures_paired import write_paired_mult_pickles
from repro.results import read_record
from repro.train import run
from tests.conftest import compose_train


@pytest.fixture(scope="module")
def mica_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mica_run")
    write_paired_mult_pickles(root / "data" / "mosi", dataset="mosi", n=(12, 4, 6))
    overrides = ["data=mosi_unaligned", "fusion=mica", "trainer.max_epochs=1", "data.batch_size=4",
                 "count_flops=false", "fusion.net.d=8", "fusion.net.heads=2", "fusion.net.layers=2",
                 "data.check_steps=false"]  # the SYNTHETIC fixture is shorter than MOSI
    run(compose_train(overrides, root / "run", root / "data"))
    assert read_record(root / "run" / "results.json")["status"] == "completed"
    return root / "run"


def test_alignment_record_and_figure(mica_run, tmp_path):
    out, figure = tmp_path / "alignment.json", tmp_path / "fig4.png"
    assert alignment.main([str(mica_run), "--out", str(out), "--figure", str(figure)]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == "repro.alignment/1" and record["synthetic"] is True
    assert set(record["a_distance_per_unit"]) == {"text_with_audio", "text_with_vision", "audio_with_text",
                                                  "audio_with_vision", "vision_with_text", "vision_with_audio"}
    assert 0.0 <= record["a_distance"] <= 2.0
    # every word's span is recovered on the paired fixture, so Corr. Acc is a fraction over all real words
    assert set(record["corr_acc_per_unit"]) == {"text_with_vision", "text_with_audio"}
    assert 0.0 <= record["corr_acc"] <= 1.0 and record["corr_acc_missing"] is None
    words = record["corr_acc_words"]["text_with_vision"]
    assert words["recovered"] == words["words"] > 0
    assert figure.is_file()


def test_alignment_refuses_a_run_without_crossmodal_units(tmp_path, capsys):
    assert alignment.main([str(tmp_path)]) == 2
    assert capsys.readouterr().out.startswith("error: ")
