"""Typed model parameters: validation errors that say what, where and how to fix; one set of defaults."""
from __future__ import annotations

import pytest

from fusionrec.cli import main
from fusionrec.config import dataset_presets, load_yaml_resource, resolve_config
from fusionrec.errors import UserError
from fusionrec.models.params import param_rows, type_label
from fusionrec.models.registry import (
    available_models,
    default_params,
    model_class,
    validate_params,
)


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(UserError) as err:
        validate_params("bpr", {"embeding_size": 8})
    e = err.value
    assert "embeding_size" in e.what and "did you mean 'embedding_size'" in e.what
    assert e.where == "model.params.embeding_size"
    # the fix lists every valid key, so it works even when the suggestion is not the intended one
    assert "embedding_size" in e.fix and "reg_weight" in e.fix


def test_unknown_key_without_a_close_match_lists_the_valid_keys():
    with pytest.raises(UserError) as err:
        validate_params("ease", {"colour": 1})
    assert "did you mean" not in err.value.what
    assert "valid parameters of ease: l2" in err.value.fix
    with pytest.raises(UserError, match="this model has no parameters"):
        validate_params("pop", {"k": 3})


def test_bad_choice_names_key_value_and_allowed_values():
    with pytest.raises(UserError) as err:
        validate_params("two_tower", {"fusion": "mean"})
    e = err.value
    assert "fusion='mean'" in e.what and e.where == "model.params.fusion"
    for allowed in ("concat", "weighted_sum", "attention", "gated", "joint", "late"):
        assert repr(allowed) in e.fix


def test_bad_type_and_out_of_range_values_are_user_errors():
    with pytest.raises(UserError) as err:
        validate_params("lightgcn", {"n_layers": "three"})
    assert "n_layers='three'" in err.value.what and "int" in err.value.fix
    with pytest.raises(UserError, match="edge_dropout=1.0") as err:
        validate_params("mmgraph", {"edge_dropout": 1.0})
    assert "float in [0, 1)" in err.value.fix
    # several problems are reported together, each with its key
    with pytest.raises(UserError) as err:
        validate_params("dcn", {"structure": "stacked", "mlp_layers": [], "dropout": -1})
    assert "dropout" in err.value.where


def test_cross_field_rules_are_checked_when_params_are_validated():
    with pytest.raises(UserError, match="stacked"):
        validate_params("dcn", {"structure": "stacked", "mlp_layers": []})
    with pytest.raises(UserError, match="item tower is empty"):
        validate_params("two_tower", {"use_id": False, "use_content": False})


def test_values_from_the_command_line_are_coerced():
    # --set parses values as YAML: "text,image" is a string, 8 an int, 1e-3 a float
    params = validate_params("two_tower", {"modalities": "text,image", "embedding_size": 8, "align_weight": 1e-3})
    assert params["modalities"] == ["text", "image"] and params["embedding_size"] == 8
    assert validate_params("vbpr", {"modalities": "all"})["modalities"] is None


def test_cascade_stage_params_are_validated_and_filled():
    params = validate_params("cascade", {"retriever": {"name": "bpr", "params": {"embedding_size": 8}}})
    assert params["retriever"]["params"] == {**default_params("bpr"), "embedding_size": 8}
    with pytest.raises(UserError) as err:
        validate_params("cascade", {"ranker": {"name": "dcn", "params": {"embeding_size": 8}}})
    assert err.value.where == "model.params.ranker.params.embeding_size"
    with pytest.raises(UserError, match="unknown model 'lightgcm'.*'lightgcn'"):
        validate_params("cascade", {"retriever": {"name": "lightgcm"}})


def test_resolve_config_fills_typed_defaults_and_rejects_typos_before_data_loads():
    cfg = resolve_config(model="bpr", overrides=["model.params.embedding_size=8"])
    assert cfg.model.params == {**default_params("bpr"), "embedding_size": 8}
    with pytest.raises(UserError, match="embedding_size"):
        resolve_config(model="bpr", overrides=["model.params.embeding_size=8"])


def test_cli_train_with_a_misspelt_parameter_exits_2_with_the_fix(capsys):
    # the preset is ml1m (shared data): the error must come from the config, before any data is read
    code = main(["train", "--dataset", "ml1m", "--model", "bpr", "--set", "model.params.embeding_size=8"])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'embedding_size'" in err and "where: model.params.embeding_size" in err


def test_dataset_presets_model_params_validate():
    for preset in dataset_presets():
        per_model = load_yaml_resource(f"datasets/{preset}.yaml").get("model_params") or {}
        for name, params in per_model.items():
            validate_params(name, params)


def test_every_field_is_described_and_typed():
    for name in available_models():
        for row in param_rows(model_class(name).Params):
            assert row.description and row.type, (name, row)
    assert type_label(int | None) == "int | null"
