import importlib
import subprocess
import sys

import pytest

from fusionrec import cli


def test_every_subcommand_has_a_summary():
    assert set(cli.SUBCOMMANDS) == set(cli.SUMMARIES)


@pytest.mark.parametrize("module_name", sorted(set(cli.SUBCOMMANDS.values())))
def test_every_subcommand_module_imports_and_registers(module_name):
    module = importlib.import_module(module_name)
    assert callable(getattr(module, "add_parser", None)), f"{module_name} has no add_parser"


def test_full_parser_registers_every_subcommand():
    parser = cli.build_parser()  # no argv: every module, as the docs generator would
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(cli.SUBCOMMANDS) <= set(sub.choices)


def test_top_level_help_lists_commands_without_importing_stages():
    code = (
        "import sys; from fusionrec import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'top-level help imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in cli.SUBCOMMANDS:
        assert f"    {name}" in out.stdout, f"{name!r} missing from --help"


def test_subcommand_help_is_its_own(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["data", "--help"])
    assert exc.value.code == 0
    assert "validate" in capsys.readouterr().out
