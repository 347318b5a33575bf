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
