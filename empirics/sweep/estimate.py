"""``--dry-run``: an estimate of a sweep's device-hours from timed training steps on this machine.

For each distinct model architecture of the sweep (dataset, preset, bottleneck, batch size,
optimiser) one training step — forward through the split model with the feature-space defenses of
its first cell, cross-entropy, backward, optimiser step — on random inputs of the dataset's shape
is timed on the chosen device (median of ``steps`` after one warm-up step).  A cell's estimate is

    t_step × ceil(n_train / batch_size) × epochs

i.e. *training only*: the attacks, CEM's per-epoch mixture fit and its extra loss, data loading
and evaluation are not counted (``invlimits bench`` times CEM's overhead).  It is an estimate from
this machine's device, labelled with it: on a CPU it is CPU-hours of this machine, not GPU-hours.

Datasets read from local files need not be present: their shape and size are known
(:data:`KNOWN_SIZES`); the cells' keys, which include the data's content hash, do need the data.
"""

from __future__ import annotations

import math
import statistics
import time
from types import SimpleNamespace

from .. import registry
from ..experiments.common import build_model

__all__ = ["KNOWN_SIZES", "dataset_shape", "time_training_step", "estimate_hours", "HoursEstimator"]

#: (input shape, classes, training examples) of the datasets read from local files (standard splits)
KNOWN_SIZES = {"cifar10": ((3, 32, 32), 10, 50_000), "mnist": ((1, 28, 28), 10, 60_000)}


def dataset_shape(name: str, data_root=None):
    """``(input_shape, num_classes, n_train)`` of a dataset (embedded ones are loaded, they are small).

    Parameters
    ----------
    name : str
        A registered dataset.
    data_root : str or Path, optional
        Folder of a dataset read from local files.

    Returns
    -------
    tuple of (tuple of int, int, int)
    """
    s = registry.spec(name)
    if s.needs_root and data_root is None:
        return KNOWN_SIZES[s.name]
    split = registry.load_dataset(s.name, root=data_root)
    return tuple(split.input_shape), int(split.num_classes), len(split.train)


def time_training_step(train_cfg, shape, num_classes: int, *, device="auto", steps: int = 3) -> float:
    """Median seconds of one training step of ``train_cfg``'s model on random inputs (see module doc).

    Parameters
    ----------
    train_cfg : TrainConfig
        The model's configuration.
    shape : tuple of int
        One input's shape.
    num_classes : int
        Classes.
    device : str
        Torch device.
    steps : int
        Timed steps.

    Returns
    -------
    float
    """
    import torch  # deferred: torch (the sweep parser and --status import this module)
    import torch.nn.functional as F

    from ..device import resolve_device  # deferred: torch
    dev = resolve_device(device)
    model = build_model(train_cfg, SimpleNamespace(input_shape=shape, num_classes=num_classes)).to(dev)
    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand((train_cfg.batch_size, *shape), generator=g).to(dev)
    y = torch.randint(0, num_classes, (train_cfg.batch_size,), generator=g).to(dev)
    opt = (torch.optim.SGD if train_cfg.optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=train_cfg.lr)
    times = []
    for i in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:  # the first step warms up (allocations, kernel selection)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


class HoursEstimator:
    """Estimated device-hours of cells one at a time (training only; see the module docstring).

    One training step is timed per distinct model architecture the first time a cell of it comes;
    every later cell of that architecture costs nothing to estimate, so a dry run can stream cells.
    Cells without a training configuration (``phase-transition``) get ``None``.
    """

    def __init__(self, *, device="auto", data_root=None, steps: int = 3):
        self.device, self.data_root, self.steps = device, data_root, steps
        self.per_model: dict = {}
        self.shapes: dict = {}

    def hours(self, cell) -> float | None:
        """The cell's estimated hours (None: nothing is trained)."""
        t = getattr(cell.config, "train", None)
        if t is None:
            return None
        if t.dataset not in self.shapes:
            self.shapes[t.dataset] = dataset_shape(t.dataset, self.data_root)
        shape, ncls, ntrain = self.shapes[t.dataset]
        # one timing per model architecture: a plain step's cost hardly depends on the defense stack
        # (their extra losses are not in it anyway)
        mk = (t.dataset, t.preset, t.bottleneck, t.batch_size, t.optimizer)
        if mk not in self.per_model:
            self.per_model[mk] = time_training_step(t, shape, ncls, device=self.device, steps=self.steps)
        return self.per_model[mk] * math.ceil(ntrain / t.batch_size) * t.epochs / 3600.0

    def basis(self) -> dict:
        """What the estimates are based on: the device, the models timed and their step times."""
        from ..device import resolve_device  # deferred: torch
        dev = resolve_device(self.device)
        name = dev.type
        if dev.type == "cuda":
            import torch  # deferred: torch
            name = f"cuda ({torch.cuda.get_device_name(dev)})"
        return {"device": name, "models_timed": len(self.per_model), "steps_timed": self.steps,
                "step_seconds": {f"{k[0]}/{k[1]} batch {k[3]} {k[4]}": v for k, v in self.per_model.items()},
                "datasets": {k: {"input_shape": list(v[0]), "classes": v[1], "n_train": v[2]}
                             for k, v in self.shapes.items()}}


def estimate_hours(cells, *, device="auto", data_root=None, steps: int = 3) -> tuple[list, dict]:
    """Per-cell estimated device-hours (training only) and what they are based on.

    Parameters
    ----------
    cells : iterable of Cell
        The spec's cells.
    device : str
        Torch device timed on.
    data_root : str or Path, optional
        Folder of datasets read from local files.
    steps : int
        Timed steps per model.

    Returns
    -------
    tuple of (list of float or None, dict)
    """
    est = HoursEstimator(device=device, data_root=data_root, steps=steps)
    hours = [est.hours(c) for c in cells]
    return hours, est.basis()
