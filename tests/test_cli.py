"""The command lines' shared parts (:mod:`gradcam_core.cli`): a parser with a required
subcommand, and one way to fail -- ``error: <message>`` on stderr and exit status 2."""

from __future__ import annotations

import pytest

from gradcam_core import cli

DOC = """Do things with the report.

More detail that is not the description.
"""


def test_command_parser_uses_the_first_paragraph_and_requires_a_subcommand(capsys):
    parser, commands = cli.command_parser("gradcam_core.example", DOC)
    assert (
        parser.prog == "python -m gradcam_core.example" and parser.description == "Do things with the report."
    )
    run = commands.add_parser("run")
    run.add_argument("--n", type=int, default=1)
    args = parser.parse_args(["run", "--n", "3"])
    assert args.command == "run" and args.n == 3
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([])
    assert (
        exit_info.value.code == 2
        and "the following arguments are required: command" in capsys.readouterr().err
    )


def test_run_returns_the_commands_status():
    assert cli.run(lambda: None, (ValueError,)) == 0
    assert cli.run(lambda: 3, (ValueError,)) == 3


def test_run_turns_the_named_errors_into_a_line_and_status_2(capsys):
    def fail():
        raise ValueError("n_images must be >= 1, got -5")

    assert cli.run(fail, (ValueError,)) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: n_images must be >= 1, got -5\n" and captured.out == ""


def test_run_lets_other_errors_through():
    def fail():
        raise KeyError("a bug, not a bad input")

    with pytest.raises(KeyError):
        cli.run(fail, (ValueError,))


def _parse_error(capsys, argument: str, kind, value: str) -> str:
    parser, commands = cli.command_parser("gradcam_core.example", DOC)
    commands.add_parser("run").add_argument(argument, type=kind)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["run", argument, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    return err


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (cli.positive_int, "0", "must be an integer >= 1, got 0"),
        (cli.positive_int, "two", "must be an integer >= 1, got 'two'"),
        (cli.non_negative_int, "-1", "must be an integer >= 0, got -1"),
        (cli.port_number, "-1", "must be a port number 0-65535, got -1"),
        (cli.port_number, "99999", "must be a port number 0-65535, got 99999"),
        (cli.comma_floats(0, 1), "0.1,x", "must be comma-separated numbers, got '0.1,x'"),
        (cli.comma_floats(0, 1), "0.1,2", "must lie in [0, 1], got 2 in '0.1,2'"),
    ],
)
def test_argument_types_refuse_bad_values_in_one_line(capsys, kind, value, message):
    err = _parse_error(capsys, "--x", kind, value)
    assert f"run: argument --x: {message} (--help for usage)" in err


def test_argument_types_accept_good_values():
    assert cli.positive_int("3") == 3 and cli.non_negative_int("0") == 0 and cli.port_number("0") == 0
    assert cli.comma_floats(0, 1)("0.15,0.3") == [0.15, 0.3]


def test_output_path_refuses_a_path_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert cli.output_path(str(tmp_path / "new" / "deeper")) == str(tmp_path / "new" / "deeper")
    err = _parse_error(capsys, "--out", cli.output_path, str(blocker / "out.csv"))
    assert "file.txt is not a folder" in err
