import pytest

from fusionrec.config import RunConfig, parse_overrides, resolve_config
from fusionrec.errors import UserError


def test_overrides_nest_and_parse_yaml_values():
    assert parse_overrides(["train.lr=1e-3", "model.params.n_layers=2", "eval.ks=[5, 10]"]) == {
        "train": {"lr": 1e-3}, "model": {"params": {"n_layers": 2}}, "eval": {"ks": [5, 10]},
    }
    with pytest.raises(ValueError, match="section.key=value"):
        parse_overrides(["train.lr"])


def test_layers_model_defaults_then_preset_then_overrides():
    cfg = resolve_config(dataset="lastfm2k", model="lightgcn", overrides=["model.params.n_layers=3"])
    assert cfg.data.name == "lastfm2k"
    assert cfg.eval.protocol == "mmrec"          # from the dataset preset
    assert cfg.model.params["n_layers"] == 3     # override beats the YAML default
    assert "reg_weight" in cfg.model.params      # untouched YAML default survives


def test_unknown_dataset_preset_is_a_user_error_not_the_demo():
    with pytest.raises(UserError, match="unknown dataset preset 'ml1mm'"):
        resolve_config(dataset="ml1mm")


def test_unknown_keys_are_rejected_with_their_name():
    with pytest.raises(Exception, match="bogus"):
        RunConfig.model_validate({"train": {"bogus": 1}})


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = resolve_config(dataset="ml100k", model="bpr")
    path = cfg.save(tmp_path / "config.yaml")
    assert resolve_config(config_file=path) == cfg
