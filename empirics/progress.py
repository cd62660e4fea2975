"""What a command shows on stderr while it works: one line per step, and progress bars.

Every command of the command line takes ``--quiet``; otherwise it prints one line per step that can
take more than a few seconds ("check-defense: training encoder + head (15 epochs) ...") and, when
stderr is a terminal, a tqdm bar inside each such step (epochs, attack iterations, cells, formulas).
Bars are off when stderr is not a terminal (a log file, a pipe, CI), so logs hold the step lines
only.  The library prints nothing unless asked: functions take ``progress=`` — ``False`` (the
default), ``True`` (bars and step lines) or a :class:`Progress` — and pass it on.

A :class:`Progress` is truthy exactly when its bars are on, so it can be passed wherever a
``progress: bool`` switches tqdm bars (``tqdm(..., disable=not progress)``).

Examples
--------
>>> p = Progress(bars=False, lines=False)
>>> bool(p), as_progress(True).lines, as_progress(p) is p
(False, True, True)
>>> list(p.bar(range(3), desc="quiet"))
[0, 1, 2]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from tqdm import tqdm

__all__ = ["Progress", "as_progress", "QUIET"]


@dataclass(frozen=True)
class Progress:
    """Progress output on stderr: ``bars`` (tqdm) and ``lines`` (one line per step), and a ``prefix``."""

    bars: bool = False
    lines: bool = False
    prefix: str = "invlimits"

    @classmethod
    def for_cli(cls, *, quiet: bool, prefix: str = "invlimits", stream=None) -> "Progress":
        """The command line's: nothing with ``--quiet``; else step lines, and bars when ``stream``
        (stderr) is a terminal."""
        stream = sys.stderr if stream is None else stream
        tty = bool(getattr(stream, "isatty", lambda: False)())
        return cls(bars=not quiet and tty, lines=not quiet, prefix=prefix)

    def __bool__(self) -> bool:
        return self.bars

    def step(self, text: str) -> None:
        """One line on stderr (when ``lines``)."""
        if self.lines:
            print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)

    def bar(self, iterable=None, *, total=None, desc: str = "", unit: str = "it", **kw):
        """A tqdm bar on stderr, disabled unless ``bars`` (the iterable is returned through it either way)."""
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not self.bars, leave=False, file=sys.stderr,
                    dynamic_ncols=True, **kw)

    def with_prefix(self, prefix: str) -> "Progress":
        return Progress(self.bars, self.lines, prefix)


#: nothing on screen (the library's default)
QUIET = Progress()


def as_progress(progress) -> Progress:
    """A :class:`Progress` from ``progress=``: a Progress as is, True = bars and step lines, False/None = quiet.

    Parameters
    ----------
    progress : bool, None or Progress
        What a caller passed.

    Returns
    -------
    Progress
    """
    if isinstance(progress, Progress):
        return progress
    return Progress(bars=True, lines=True) if progress else QUIET
