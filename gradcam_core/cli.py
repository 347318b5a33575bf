"""What the package's command lines share (``python -m gradcam_core.data``, ``.runner``,
``.study``): a parser with subcommands, and one way to fail -- a line on stderr naming what is
wrong, and exit status 2, never a traceback for a bad input."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``error: <prog>: <message>`` (not the
    usage block), with exit status 2 as every bad input of the command lines."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (--help for usage)", file=sys.stderr)
        sys.exit(2)


def command_parser(module: str, doc: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A parser for ``python -m <module>`` described by the first paragraph of ``doc``, and the
    action to add its subcommands to (one is required). A bad argument is one line on stderr
    and exit status 2."""
    parser = _OneLineParser(prog=f"python -m {module}", description=doc.strip().split("\n\n")[0])
    return parser, parser.add_subparsers(dest="command", required=True)


def _integer(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``--n-images``, ``--batch-size``, ``--chunk-size``);
    anything else is a usage error (exit status 2) naming the value."""
    return _integer(text, 1, None, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (``--num-workers``, ``--shard-index``)."""
    return _integer(text, 0, None, "an integer >= 0")


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    return _integer(text, 0, 65535, "a port number 0-65535")


def output_path(text: str) -> str:
    """An argparse type: a path a command will write (a file or a folder, created if needed),
    refused up front when it cannot be: its nearest existing ancestor is not a writable folder,
    or the path itself is an existing folder where a file is meant (checked by the caller)."""
    path = Path(text).expanduser()
    ancestor = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    if ancestor != path and not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {ancestor} is not writable")
    return text


def comma_floats(low: float, high: float):
    """An argparse type: comma-separated numbers, each in ``[low, high]`` (``--thresholds``)."""

    def parse(text: str) -> list[float]:
        try:
            values = [float(item) for item in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None
        outside = [v for v in values if not low <= v <= high]
        if outside:
            raise argparse.ArgumentTypeError(
                f"must lie in [{low:g}, {high:g}], got {outside[0]:g} in {text!r}"
            )
        return values

    return parse


def run(command: Callable[[], int | None], errors: tuple[type[Exception], ...]) -> int:
    """Run ``command``; an exception of ``errors`` becomes ``error: <message>`` on stderr and
    exit status 2. Returns the exit status (0 when ``command`` returns None)."""
    try:
        return command() or 0
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
