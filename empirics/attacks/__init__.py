"""Inversion attacks with one interface: ``fit(model, aux, ...)`` then ``reconstruct(obs)``.

============== =========================================================== ===================
name           what it is                                                    sees
============== =========================================================== ===================
decoder        MSE-trained decoder (CEM supp. §9)                          deployed features
gan            decoder + WGAN-GP critic + MSE (CEM supp. §9)               deployed features
optimization   white-box argmin_s ‖h(s) − z‖ₚᵖ + ζ·TV(s) (MixCon §C.1–C.2)  deployed features
truncation     inversion model on trunc_m predictions (Yang et al. 2019)    top-m prediction
============== =========================================================== ===================

``attack.observe(model, x)`` gives exactly what the attacker sees; ``attack.evaluate(model,
test)`` reports MSE/PSNR/SSIM on held-out data; :mod:`empirics.attacks.optimality` compares
attacks with the exact MMSE on synthetic mixtures.
"""

from .base import Attack, ImageDecoder, MLPDecoder, TrainedAttack
from .decoder import DecoderAttack
from .gan import GANAttack
from .optimization import OptimizationAttack, total_variation
from .truncation import TruncationAttack, auxiliary_split, truncate_topk

ATTACKS = {"decoder": DecoderAttack, "gan": GANAttack, "optimization": OptimizationAttack,
           "truncation": TruncationAttack}

from ..registry import DATASET_ATTACKS  # noqa: E402  (attacks offered by name on the command line)


def make_attack(name: str, **kwargs) -> Attack:
    """Create an attack by name, e.g. ``make_attack("decoder", epochs=20)``.

    Parameters
    ----------
    name : str
        A name of :data:`ATTACKS`.
    **kwargs
        Its constructor's parameters.

    Returns
    -------
    Attack
    """
    try:
        cls = ATTACKS[name]
    except KeyError:
        raise ValueError(f"attack: expected one of {sorted(ATTACKS)}, got {name!r}") from None
    return cls(**kwargs)


__all__ = ["Attack", "TrainedAttack", "ImageDecoder", "MLPDecoder", "DecoderAttack", "GANAttack",
           "OptimizationAttack", "TruncationAttack", "ATTACKS", "DATASET_ATTACKS", "make_attack", "truncate_topk",
           "auxiliary_split", "total_variation"]
