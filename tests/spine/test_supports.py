"""Which data a fusion method runs on is declared once (fusion `supports:`, data `family:`; repro.config), and a
preset exists only where a pair carries settings."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from repro.config import (
    CONFIG_DIR,
    ConfigError,
    available,
    check_cli,
    check_pair,
    data_family,
    supported_fusions,
    unknown_supports,
)
from repro.train import build_net, network_name, run
from tests.conftest import FAST, compose_train

# The supported pairs as they were on main before the declaration moved into the configs (computed there from
# configs/preset/<data>_<fusion>.yaml): moving it must not add or drop a single pair.
SUPPORTED_ON_MAIN = {
    "avdigits": ["centralnet", "concat", "gmu", "late_avg", "late_product", "mcbp", "mfas_found", "mmtm", "msaf",
                 "multiplicative", "two_stream", "unimodal_audio", "unimodal_image"],
    "avdigits_full": ["mfas_found", "two_stream", "unimodal_audio", "unimodal_image"],
    "avmnist": ["centralnet", "concat", "gmu", "late_avg", "late_product", "mcbp", "mfas_found", "mmtm", "msaf",
                "multiplicative", "two_stream", "unimodal_audio", "unimodal_image"],
    "iemocap": ["ef_lstm", "lf_lstm", "lmf", "marn", "rmfn", "tfn", "unimodal_audio", "unimodal_text",
                "unimodal_vision"],
    "iemocap_unaligned": ["ctc_ef_lstm", "lf_lstm", "mica", "mult"],
    "mmimdb": ["centralnet", "gmu", "mfas_found", "two_stream", "unimodal_image", "unimodal_text"],
    "mosei": ["ef_lstm", "lf_lstm", "lmf", "marn", "rmfn", "tfn", "unimodal_audio", "unimodal_text",
              "unimodal_vision"],
    "mosei_msaf": ["lmf", "msaf", "tfn", "unimodal_audio", "unimodal_text", "unimodal_vision"],
    "mosei_unaligned": ["ctc_ef_lstm", "lf_lstm", "mica", "mult"],
    "mosi": ["ef_lstm", "lf_lstm", "lmf", "marn", "rmfn", "tfn", "unimodal_audio", "unimodal_text",
             "unimodal_vision"],
    "mosi_unaligned": ["ctc_ef_lstm", "lf_lstm", "mica", "mult"],
    "pom": ["ef_lstm", "lf_lstm", "lmf", "marn", "rmfn", "tfn", "unimodal_audio", "unimodal_text",
            "unimodal_vision"],
    "synthetic_folds": ["concat", "late_avg", "msaf", "unimodal_audio", "unimodal_image"],
}
# Added since (issue 14): the RAVDESS pairs, every MSAF Table 1 row (video_audio) and the audio-only release.
SUPPORTED_ON_MAIN |= {
    "ravdess": ["concat", "late_avg", "late_product", "mcbp", "mmtm", "msaf", "multiplicative", "unimodal_audio",
                "unimodal_video"],
    "ravdess_audio": ["unimodal_audio"],
}
# Added since (issue 15): the NTU skeleton-only HCN row.
SUPPORTED_ON_MAIN |= {"ntu_skeleton": ["unimodal_skeleton"]}
# Added since (issue 15): data=ntu (skeletons + RGB) and the fusions of MSAF T3 / MFAS T4 on it.
SUPPORTED_ON_MAIN |= {"ntu": ["centralnet", "gmu", "late_avg", "mfas_found", "mmtm", "msaf", "two_stream",
                      "unimodal_skeleton", "unimodal_video"]}
# Added since (issue 16): MESM's raw-data configs and their end-to-end networks (FE2E, MESM).
SUPPORTED_ON_MAIN |= {"iemocap_raw": ["fe2e", "mesm"], "mosei_raw": ["fe2e", "mesm"]}


# Added since (issue 16): MESM's hand-crafted-feature baselines (LF-LSTM, LF-Transformer, MulT).
SUPPORTED_ON_MAIN |= {d: ["lf_rnn", "lf_transformer", "mult"] for d in ("iemocap_hcf", "mosei_hcf")}


def test_supported_pairs_are_exactly_those_of_main():
    assert {d: supported_fusions(d) for d in available("data")} == SUPPORTED_ON_MAIN
    assert sum(map(len, SUPPORTED_ON_MAIN.values())) == 95 + 10 + 1 + 9 + 6 + 4


def test_every_supports_entry_names_a_family_or_a_data_set():
    assert unknown_supports() == {}


def test_presets_exist_only_where_they_carry_settings():
    presets = available("preset")
    for name in presets:
        cfg = OmegaConf.load(CONFIG_DIR / "preset" / f"{name}.yaml")
        assert OmegaConf.to_container(cfg) and cfg.get("fusion", {}).get("net") != {}, f"{name}.yaml sets nothing"
        data = next(d for d in sorted(available("data"), key=len, reverse=True) if name.startswith(f"{d}_"))
        assert name[len(data) + 1:] in supported_fusions(data), f"preset {name}.yaml is for an unsupported pair"
    # 95 before the comment-only ones were removed; issue 15 added 7 NTU presets (ntu_<fusion>, ntu_mfas_found)
    assert len(presets) == 53 + 6 + 4  # issue 16: {iemocap,mosei}_hcf_{lf_rnn,lf_transformer,mult}, *_raw_{fe2e,mesm}


def test_data_family_follows_the_data_config_defaults(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "base.yaml").write_text("name: base\nfamily: image_audio\n")
    (tmp_path / "data" / "big.yaml").write_text("defaults:\n  - base\n  - _self_\nname: big\n")
    (tmp_path / "data" / "own.yaml").write_text("defaults:\n  - base\n  - _self_\nname: own\nfamily: null\n")
    assert data_family("big", tmp_path) == "image_audio"  # inherited, as Hydra would compose it
    assert data_family("own", tmp_path) is None  # its own `family: null` wins
    assert data_family("avdigits_full") is None and data_family("avdigits") == "image_audio"


def test_unsupported_pair_is_the_one_line_listing_the_supported_fusions():
    with pytest.raises(ConfigError) as err:
        check_cli(["data=mosi", "fusion=msaf"])
    assert str(err.value) == ("fusion=msaf is not supported with data=mosi; supported fusions for mosi: "
                              "ef_lstm, lf_lstm, lmf, marn, rmfn, tfn, unimodal_audio, unimodal_text, unimodal_vision")
    check_pair("mosei_msaf", "msaf")  # named by data name in msaf's `supports`
    check_pair("mosi", "tfn")  # through the family cmu_aligned


def _configs(tmp_path, data_yaml: str, fusion_yaml: str):
    for group, text in (("data", data_yaml), ("fusion", fusion_yaml)):
        (tmp_path / group).mkdir()
        (tmp_path / group / f"{group[0]}.yaml").write_text(text)
    return tmp_path


def test_a_data_config_without_family_is_a_clear_error(tmp_path):
    config_dir = _configs(tmp_path, "name: d\n", "name: f\nsupports: [image_audio]\n")
    with pytest.raises(ConfigError) as err:
        check_cli(["data=d", "fusion=f"], config_dir=config_dir)
    message = str(err.value)
    assert "\n" not in message and message.startswith("configs/data/d.yaml has no `family:` key")
    assert "add it" in message


@pytest.mark.parametrize("supports", ["", "supports: image_audio\n", "supports: {a: 1}\n"])
def test_a_fusion_config_without_a_supports_list_is_a_clear_error(tmp_path, supports):
    config_dir = _configs(tmp_path, "name: d\nfamily: image_audio\n", f"name: f\n{supports}")
    with pytest.raises(ConfigError) as err:
        check_cli(["data=d", "fusion=f"], config_dir=config_dir)
    message = str(err.value)
    assert "\n" not in message and message.startswith("configs/fusion/f.yaml has no `supports:` list")


def test_a_misspelt_supports_entry_is_reported(tmp_path):
    config_dir = _configs(tmp_path, "name: d\nfamily: image_audio\n", "name: f\nsupports: [image_adio, d]\n")
    assert unknown_supports(config_dir) == {"f": ["image_adio"]}


def test_train_prints_the_network_class_it_built(tmp_path, data_dir, capsys):
    run(compose_train(["data=avmnist", "data.reader.val_size=20", "fusion=msaf", *FAST], tmp_path, data_dir))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("network: ")]
    assert lines == ["network: repro.models.fusion.msaf.MSAFNet (data=avmnist fusion=msaf)"]


def test_the_msaf_placement_follows_the_pair(tmp_path):
    # MSAF on MSAF's MOSEI layout builds the sequence placement (its preset), on image + audio the staged one
    built = {data: network_name(build_net(compose_train([f"data={data}", "fusion=msaf"], tmp_path)))
             for data in ("mosei_msaf", "avdigits")}
    assert built == {"mosei_msaf": "repro.models.fusion.msaf.SequenceMSAFNet",
                     "avdigits": "repro.models.fusion.msaf.MSAFNet"}


def test_a_config_that_is_not_yaml_is_one_line(tmp_path):
    config_dir = _configs(tmp_path, "name: d\nfamily: [image_audio\n", "name: f\nsupports: [d]\n")
    with pytest.raises(ConfigError) as err:
        check_pair("d", "f", config_dir)
    message = str(err.value)
    assert "\n" not in message and message.startswith("configs/data/d.yaml is not valid YAML at line 3")
