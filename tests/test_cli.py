import importlib

import pytest

from fusionrec import cli


@pytest.mark.parametrize("module_name", sorted(set(cli.SUBCOMMANDS.values())))
def test_every_subcommand_module_imports_and_registers(module_name):
    module = importlib.import_module(module_name)
    assert callable(getattr(module, "add_parser", None)), f"{module_name} has no add_parser"


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out, f"subcommand {name!r} missing from --help"
