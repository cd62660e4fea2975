"""Figures: the one way the package makes a figure and writes it.

matplotlib's object interface (:class:`matplotlib.figure.Figure`): no pyplot state and no global
backend switch, so writing a figure never changes the caller's matplotlib settings and needs no
display.  Imported by the kinds and sections that draw; matplotlib itself is loaded only when a
figure is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    from matplotlib.figure import Figure

__all__ = ["new_figure", "colour_cycle", "save_figure"]


def new_figure(figsize: tuple[float, float]) -> "Figure":
    """An empty figure, not registered with pyplot (nothing to close).

    Parameters
    ----------
    figsize : tuple of float, shape (2,)
        Width and height in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure  # deferred: matplotlib costs ~0.5 s to import; only drawing needs it

    return Figure(figsize=figsize)


def colour_cycle() -> list[str]:
    """The colours matplotlib's current style cycles through, in order.

    Returns
    -------
    list of str
    """
    from matplotlib import rcParams  # deferred: as in new_figure

    return list(rcParams["axes.prop_cycle"].by_key()["color"])


def save_figure(fig: "Figure", path: "str | Path", *, dpi: int = 120) -> str:
    """Lay out ``fig`` and write it to ``path`` (folders made as needed).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        The image file; its suffix chooses the format.
    dpi : int
        Resolution.

    Returns
    -------
    str
        ``path``.
    """
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return str(path)
