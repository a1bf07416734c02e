"""The progress bar of the operator commands that run for minutes (purge, rollups)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm


def terminal_bar(command: BaseCommand, verbosity: int, **options: Any) -> tqdm:
    """A tqdm bar on COMMAND's stderr, drawn only when that is a terminal and VERBOSITY
    is above 0: piped or logged output stays free of carriage-return redraws. OPTIONS
    go to tqdm (total, unit, desc…)."""
    stream = getattr(command.stderr, "_out", sys.stderr)
    show = verbosity > 0 and hasattr(stream, "isatty") and stream.isatty()
    return tqdm(file=stream, disable=not show, **options)


def follow(bar: tqdm) -> Callable[[int, int], None]:
    """A progress callback, called with (steps done, steps in all), that moves BAR: for
    work whose number of steps is known only once it has begun."""

    def report(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return report
