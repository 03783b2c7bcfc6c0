"""`fusionrec models` and the generated configuration reference (fails when the committed file is stale)."""
from __future__ import annotations

import subprocess
import sys

from fusionrec.cli import main
from fusionrec.models.reference import REFERENCE_PATH, REFRESH_COMMAND, render_reference
from fusionrec.models.registry import available_models, default_params
from tests.conftest import REPO_ROOT


def test_committed_configuration_reference_is_current():
    committed = REPO_ROOT / REFERENCE_PATH
    assert committed.is_file(), f"{REFERENCE_PATH} is missing: run `{REFRESH_COMMAND}`"
    assert committed.read_text() == render_reference(), (
        f"{REFERENCE_PATH} is stale (a config or model parameter changed): run `{REFRESH_COMMAND}` and commit it")


def test_reference_covers_every_model_parameter_and_run_section():
    text = render_reference()
    for name in available_models():
        assert f"### `{name}` (" in text
        for key in default_params(name):
            assert f"| `{key}` |" in text, (name, key)
    for key in ("`data.split.method`", "`train.valid_metric`", "`eval.protocol`", "`model.params`"):
        assert key in text


def test_every_run_config_field_has_a_description():
    from fusionrec.config import RunConfig
    from fusionrec.models.params import nested_sections

    def missing(cls, path):
        out = [f"{path}{name}" for name, f in cls.model_fields.items() if not f.description]
        for name, sub in nested_sections(cls).items():
            out += missing(sub, f"{path}{name}.")
        return out

    assert not missing(RunConfig, ""), (
        f"add Field(description=...) in fusionrec/config.py, then run `{REFRESH_COMMAND}`")


def test_models_lists_one_line_per_model_with_its_kind(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    for name in available_models():
        line = next(x for x in out if x.split()[:1] == [name])
        assert line.split()[1] in ("ID-only", "multimodal", "ranker", "rating")
    assert next(x for x in out if x.startswith("mmgraph ")).split()[1] == "multimodal"
    assert next(x for x in out if x.startswith("biased_mf ")).split()[1] == "rating"
    assert next(x for x in out if x.startswith("bpr ")).split()[1] == "ID-only"


def test_models_show_prints_types_defaults_and_meanings(capsys):
    assert main(["models", "show", "mmgraph"]) == 0
    out = capsys.readouterr().out
    align = next(x for x in out.splitlines() if x.startswith("align "))
    assert "none | infonce" in align and "infonce" in align.split("none | infonce", 1)[1]
    assert "InfoNCE" in align
    assert main(["models", "show", "mmgrap"]) == 2
    assert "did you mean 'mmgraph'" in capsys.readouterr().err


def test_models_help_and_list_do_not_import_torch():
    code = ("import sys\nfrom fusionrec.cli import main\nmain(['models'])\n"
            "try:\n    main(['models', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
