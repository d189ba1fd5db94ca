"""The console human output is drawn on: imported only where something is drawn, so that JSON output never loads
rich."""
from __future__ import annotations

from rich.console import Console


class PipeFriendlyConsole(Console):
    """rich exits 1 when the reader of stdout goes away (`| head`); hand that to the CLI, which ends quietly."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError
