"""The one output sink of the CLI: the result on stdout (one JSON document, or text for people); progress,
questions and errors on stderr, so a pipeline reading stdout gets nothing but its document."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from gptoss_deploy.planner.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

Progress = Callable[[str], None]


def say(console: Console, text: str) -> None:
    """TEXT exactly as it is: no markup read into it (a `[llamacpp]` stays), and never wrapped by us, so a command
    in it copies whole at any width (the terminal may fold it for the eye; the line stays one)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class Output:
    """What one command shows: JSON mode prints exactly one document; human mode renders it with rich."""

    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode

    @cached_property
    def console(self) -> Console:
        """Human output on stdout."""
        from gptoss_deploy.cli.console import PipeFriendlyConsole

        return PipeFriendlyConsole(highlight=False)

    def result(self, document: object, render: Callable[[Console], None]) -> None:
        """The command's result: DOCUMENT as JSON, or RENDER drawing it for people."""
        if self.json_mode:
            self.json(document)
        else:
            render(self.console)

    @staticmethod
    def json(document: object) -> None:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")

    @contextmanager
    def progress(self) -> Iterator[Progress]:
        """Progress on stderr: a spinner on a terminal, plain lines in a pipeline."""
        from rich.console import Console
        from rich.markup import escape

        err = Console(stderr=True, highlight=False)
        if err.is_terminal:
            with err.status("starting") as spinner:
                yield lambda message: spinner.update(escape(message))    # a file name's [..] stays text
        else:
            yield lambda message: err.print(f"gptoss: {message}", markup=False, soft_wrap=True)

    @staticmethod
    def note(message: str) -> None:
        """Something the user should know that is not the result: on stderr, one line."""
        sys.stderr.write(f"gptoss: {message}\n")

    @staticmethod
    def confirmer(yes: bool) -> Callable[[str], bool]:
        """A yes/no question on the terminal; with nobody there, only --yes says yes (never a silent default)."""
        def confirm(question: str) -> bool:
            if yes:
                return True
            if not sys.stdin.isatty():
                raise UsageError(f"{question.rstrip('?')}: needs confirmation; pass --yes to delete without asking")
            import typer

            return typer.confirm(question, default=False, err=True)
        return confirm

    def error(self, message: str, code: str, exit_code: int, details: dict | None = None) -> int:
        """One line on stderr; in JSON mode the error document on stdout (with what was measured, if anything)."""
        sys.stderr.write(f"gptoss: error: {message}\n")
        if self.json_mode:
            document = {"schema_version": 1, "error": {"code": code, "message": message}, "exit_code": exit_code}
            self.json({**document, "result": details} if details else document)
        return exit_code
