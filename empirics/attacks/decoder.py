"""Decoder-based model inversion (CEM paper, supp. §9): train ``G: z → x`` on auxiliary data.

The attacker queries the deployed client model with auxiliary inputs, receives the features as
deployed (noise and every other defense included) and fits a decoder by mean squared error,
then applies it to the victim's features.  For feature maps the decoder is residual blocks +
stride-2 transposed convolutions + sigmoid (:class:`~empirics.attacks.base.ImageDecoder`); for
vector features an MLP with a linear skip (:class:`~empirics.attacks.base.MLPDecoder`).  With
unlimited auxiliary data from the input distribution and a rich enough decoder, the MSE-trained
decoder approaches the posterior mean E[x|z], i.e. the MMSE — which is what the optimality
benchmark measures.
"""

from __future__ import annotations

from .base import TrainedAttack

__all__ = ["DecoderAttack"]


class DecoderAttack(TrainedAttack):
    """Decoder (learning-based) model inversion attack.

    Parameters
    ----------
    arch : {'auto', 'conv', 'mlp'}
        'auto': convolutional decoder for (C, h, w) features and image inputs, MLP otherwise.
    width, n_res : int
        Channels and residual blocks of the convolutional decoder.
    hidden, depth : int
        Width and depth of the MLP decoder.
    epochs, batch_size, lr : training settings (Adam, one-cycle schedule).
    """

    name = "decoder"
