import argparse
import importlib
import re
import subprocess
import sys

import pytest
import yaml

from fusionrec import cli, output


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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    for name in cli.SUBCOMMANDS:
        assert f"    {name}" in out.stdout, f"{name!r} missing from --help"


def test_subcommand_help_is_its_own(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["data", "--help"])
    assert exc.value.code == 0
    assert "validate" in capsys.readouterr().out


def _all_parsers(parser: argparse.ArgumentParser, path: str = "fusionrec"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _all_parsers(child, f"{path} {name}")


def test_every_command_accepts_verbose_and_quiet():
    found = dict(_all_parsers(cli.build_parser()))
    assert "fusionrec data validate" in found
    for path, parser in found.items():
        for flag in ("-v", "--verbose", "-q", "--quiet"):
            assert flag in parser._option_string_actions, f"{path} lacks {flag}"


@pytest.mark.parametrize("argv,verbose,quiet", [
    (["-q", "train", "--model", "bpr"], 0, True),
    (["train", "--model", "bpr", "-q"], 0, True),
    (["-v", "train"], 1, False),
    (["train", "-vv"], 2, False),
    (["-v", "data", "validate", "x.csv", "--quiet"], 1, True),
    (["train"], 0, False),
])
def test_output_flags_anywhere_on_the_line(argv, verbose, quiet):
    args = cli.build_parser(argv).parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)


@pytest.fixture()
def run_file(tmp_path):
    output.configure()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"name": "demo", "format": "demo", "demo": {"n_users": 60, "n_items": 40, "seed": 3,
                                                              "root": str(tmp_path / "demo_data")},
                 "split": {"method": "random", "seed": 1}},
        "train": {"epochs": 2, "num_threads": 1, "batch_size": 256, "seeds": [5]},
        "eval": {"ks": [10, 20], "beyond_accuracy": False},
        "output_dir": str(tmp_path / "runs"),
    }))
    yield path
    output.configure()


def test_train_prints_epoch_lines_then_the_table(run_file, capsys):
    assert cli.main(["train", "--config", str(run_file), "--model", "bpr"]) == 0
    out, err = capsys.readouterr()
    assert re.findall(r"^\[bpr\] epoch (\d)/2  loss \d+\.\d{4}  valid recall@20 \d\.\d{4}", err, re.MULTILINE) == ["1", "2"]
    assert re.search(r"^\[bpr\] seed 5: best epoch \d", err, re.MULTILINE)
    assert "recall@20" in out and "1 seed" in out and "±" not in out and "run directory: " in out
    assert "np." not in out + err


def test_quiet_train_prints_only_the_table_and_where_the_run_is(run_file, capsys):
    assert cli.main(["train", "--config", str(run_file), "--model", "bpr", "-q"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0].startswith("model") and "recall@20" in out
    # the run folder is part of the result: evaluate and serve need the model inside it
    assert out.strip().splitlines()[-1].startswith("run directory: ")


def test_a_wrong_valid_metric_stops_before_training_with_a_fix_that_works(run_file, capsys):
    argv = ["train", "--config", str(run_file), "--model", "bpr", "--set", "train.valid_metric=recall@30"]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "epoch" not in err
    assert "error: train.valid_metric 'recall@30'" in err and "where: train.valid_metric" in err
    fix = re.search(r"--set '(eval\.ks=\[[\d, ]+\])'", err).group(1)
    assert cli.main([*argv, "--set", fix, "-q"]) == 0
    assert "recall@30" not in capsys.readouterr().err
