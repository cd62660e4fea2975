"""The callable a SLURM array task runs (imports submitit: loaded only by the slurm executor).

:class:`CellJob` is a :class:`submitit.helpers.Checkpointable`: when SLURM signals a time limit or a
preemption, submitit requeues the same task, which resumes from the cell's training checkpoint
(``OUT/checkpoints/<key>.pt``, see :mod:`empirics.sweep.worker`).
"""

from __future__ import annotations

import submitit

from .worker import run_cell

__all__ = ["CellJob"]


class CellJob(submitit.helpers.Checkpointable):
    """Run one cell's task (:func:`empirics.sweep.worker.run_cell`); requeued on timeout."""

    def __call__(self, task: dict) -> dict:
        return run_cell(task)
