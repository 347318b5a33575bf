"""What the package's command lines share (``python -m gradcam_core.data``, ``.runner``,
``.study``): a parser with subcommands, and one way to fail -- a line on stderr naming what is
wrong, and exit status 2, never a traceback for a bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def command_parser(module: str, doc: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A parser for ``python -m <module>`` described by the first paragraph of ``doc``, and the
    action to add its subcommands to (one is required)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.strip().split("\n\n")[0])
    return parser, parser.add_subparsers(dest="command", required=True)


def run(command: Callable[[], int | None], errors: tuple[type[Exception], ...]) -> int:
    """Run ``command``; an exception of ``errors`` becomes ``error: <message>`` on stderr and
    exit status 2. Returns the exit status (0 when ``command`` returns None)."""
    try:
        return command() or 0
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
