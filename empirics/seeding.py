"""Independent random streams from one master seed (``numpy.random.SeedSequence``).

Every source of randomness in a run — weight initialisation, batch order, feature noise, the
global torch RNG used by layers such as dropout, each attack's initialisation / noise / batch
order, evaluation noise — gets its own stream, derived from the master seed by
``SeedSequence(seed, spawn_key=(stream id, *extra))``.  Streams of one seed are statistically
independent of each other and of every stream of any other seed; in particular seed ``s + 1``'s
batch order is *not* seed ``s``'s noise (which additive offsets such as ``seed + 1`` would give).

Examples
--------
>>> stream_seed(0, "shuffle") == stream_seed(0, "shuffle")
True
>>> stream_seed(1, "shuffle") == stream_seed(0, "features")
False
>>> len({stream_seed(s, name) for s in range(3) for name in STREAMS})
39
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAMS", "stream_seed", "torch_generator", "numpy_rng"]

#: stream name -> its spawn key (never renumber: results are keyed by seed)
STREAMS: dict[str, int] = {
    "init": 0,            # model weights (make_model)
    "shuffle": 1,         # training batch order
    "features": 2,        # defenses' randomness during training (noise, dropout ...)
    "torch": 3,           # the global torch RNG inside the training loop (forked)
    "eval": 4,            # deployed-defense randomness when evaluating accuracy
    "attack_init": 5,     # an attack's network initialisation (global torch RNG, forked)
    "attack_obs": 6,      # an attack's fresh observations of the auxiliary set
    "attack_shuffle": 7,  # an attack's batch order
    "attack_eval": 8,     # the observation noise of the held-out evaluation
    "attack_eval_train": 9,  # ... of the evaluation on training inputs
    "data": 10,           # synthetic data / instances drawn for a run
    "mc": 11,             # Monte-Carlo estimates inside a run
    "defense": 12,        # a defense's own state (e.g. an adversary's initialisation)
}


def stream_seed(seed: int, stream: str, *extra: int) -> int:
    """A 63-bit integer seed for ``stream`` of master ``seed`` (plus optional integer ``extra`` keys).

    Suitable for ``torch.Generator.manual_seed`` and ``numpy.random.default_rng``.

    Parameters
    ----------
    seed : int
        The master seed.
    stream : str
        The stream's name (``init``, ``data``, ``defense``, ``attack_eval`` ...).
    *extra : int
        Further integer keys.

    Returns
    -------
    int
    """
    if stream not in STREAMS:
        raise ValueError(f"stream: expected one of {sorted(STREAMS)}, got {stream!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=(STREAMS[stream], *(int(e) for e in extra)))
    hi, lo = (int(v) for v in ss.generate_state(2, np.uint32))
    return ((hi << 32) | lo) >> 1


def numpy_rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    """``numpy.random.default_rng`` on the given stream.

    Parameters
    ----------
    seed : int
        The master seed.
    stream : str
        The stream's name.
    *extra : int
        Further integer keys.

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng(stream_seed(seed, stream, *extra))


def torch_generator(seed: int, stream: str, *extra: int, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded from the given stream.

    Parameters
    ----------
    seed : int
        The master seed.
    stream : str
        The stream's name.
    *extra : int
        Further integer keys.
    device : str or torch.device
        Device of the generator.

    Returns
    -------
    torch.Generator
    """
    import torch  # deferred: seeding is imported by torch-free modules

    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream, *extra))
