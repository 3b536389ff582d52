"""PReNet, its variants PReNet_r, PRN and PRN_r, and its real-rain network.

Paper: D. Ren, W. Zuo, Q. Hu, P. Zhu, D. Meng, "Progressive Image Deraining Networks: A Better and
Simpler Baseline", CVPR 2019. Official code: https://github.com/csdwren/PReNet (``networks.py``;
the real-rain network in ``generator.py``).

Each of the ``T`` stages sees ``concat([rainy, previous estimate])`` (rainy first; at stage 1 the
previous estimate is the rainy image itself) and runs ``conv0`` (6→C, ReLU), optionally a
convolutional LSTM whose state carries across stages, five residual blocks and a final 3×3
convolution whose output is added to the rainy input. All stages share all weights.

Variants (official class → registry name):
    ``PReNet`` → ``prenet``: conv-LSTM + five distinct residual blocks (168,963 parameters).
    ``PReNet_r`` → ``prenet_r``: conv-LSTM + one residual block applied five times (94,979).
    ``PRN`` → ``prn``: no LSTM, five distinct residual blocks (95,107).
    ``PRN_r`` → ``prn_r``: no LSTM, one residual block applied five times (21,123).
    ``Generator_lstm`` → ``prenet_real``: the network of the real-rain checkpoints (168,963),
    see below.

Outputs:
    ``derained``: the last stage's estimate (not clamped; the official test clamps afterwards).
    ``stages``: all stage estimates, shape ``(N, T, H, W, 3)``; ``stages[:, -1] == derained``.

Where the official code is more specific than the paper:
    * Each residual block is ``ReLU(ReLU(conv(ReLU(conv(x)))) + x)``: the block's own sequence
      ends in a ReLU before the skip addition, and another ReLU follows the addition.
    * The LSTM gates are four separate 3×3 convolutions (``conv_i``, ``conv_f``, ``conv_g``,
      ``conv_o``) over ``concat([x, h])``; ``h`` and ``c`` start at zero.
    * The network output is not clamped; the official test script clamps to [0, 1].

The real-rain network ``prenet_real`` (class ``Generator_lstm`` of ``generator.py`` at commit
6d908d1e3c7ff5c26fee624112297ad1c8603ca7, run by ``test_real.py`` on the released checkpoints
``logs/real/PReNet1.pth`` and ``logs/real/PReNet2.pth``) has PReNet's modules, names and shapes,
so those checkpoints also load into ``prenet`` without any error, and give wrong images there: the
architecture has to be chosen by name. It differs from ``PReNet`` in three ways:
    * the conv-LSTM comes after the five residual blocks (``PReNet``: right after ``conv0``), and
      the output convolution reads the LSTM's ``h``;
    * there is no global residual: the output convolution's result is the stage's estimate
      itself, not a correction added to the rainy input;
    * ``T = 4`` stages (``test_real.py``'s default ``recurrent_iter``) instead of 6.
It departs from the paper in the same three ways: the paper's PReNet (Fig. 2) applies
``f_recurrent`` between ``f_in`` and ``f_res``, predicts a residual image and uses ``T = 6``. The
paper does not describe this wiring, and the repository holds no script or data that trained it.
The official code fixes its width at 32 (``channels`` here, inferred from the checkpoint).
"""

from __future__ import annotations

from tfderain._keras import keras
from tfderain.models import Tiny, register
from tfderain.models.blocks import ConvLSTMCell, Stack, ZerosLike, conv

layers = keras.layers

_RES_BLOCKS = 5


def _key_map(lstm: bool, recursive: bool) -> dict[str, str]:
    """Keras layer name → official ``state_dict`` module prefix."""
    table = {"conv0": "conv0.0", "conv": "conv.0"}
    for k in range(1, 2 if recursive else _RES_BLOCKS + 1):
        table[f"res_conv{k}_a"] = f"res_conv{k}.0"
        table[f"res_conv{k}_b"] = f"res_conv{k}.2"
    if lstm:
        table.update({f"conv_{g}": f"conv_{g}.0" for g in "ifgo"})
    return table


def _infer_config(state_dict) -> dict:
    """Channel width from the checkpoint; the stage count is not stored in the weights."""
    return {"channels": int(state_dict["conv0.0.weight"].shape[0])}


def _progressive_network(
    name: str,
    stages: int,
    channels: int,
    lstm: bool,
    recursive: bool,
    lstm_after_res: bool = False,
) -> keras.Model:
    """The stage loop shared by all variants.

    ``lstm_after_res`` selects the real-rain wiring (``Generator_lstm``): the conv-LSTM follows
    the residual blocks and each stage's estimate is the output convolution of ``h`` alone, with
    no global residual. Otherwise (``networks.py``) the LSTM follows ``conv0`` and the output
    convolution's result is added to the rainy input.
    """
    if stages < 1 or channels < 1:
        raise ValueError(f"stages and channels must be positive, got {stages}, {channels}")
    rainy = keras.Input((None, None, 3), name="rainy")
    conv0 = conv(channels, activation="relu", name="conv0")
    n_distinct = 1 if recursive else _RES_BLOCKS
    res_convs = [
        (
            conv(channels, activation="relu", name=f"res_conv{k}_a"),
            conv(channels, activation="relu", name=f"res_conv{k}_b"),
        )
        for k in range(1, n_distinct + 1)
    ]
    conv_out = conv(3, name="conv")
    cell = ConvLSTMCell(channels) if lstm else None
    if cell is not None:
        h = ZerosLike(channels, name="h0")(rainy)
        c = ZerosLike(channels, name="c0")(rainy)

    estimate = rainy
    outputs = []
    for t in range(1, stages + 1):
        tag = f"stage{t}"
        x = conv0(layers.Concatenate(name=f"{tag}_in")([rainy, estimate]))
        if cell is not None and not lstm_after_res:
            h, c = cell(x, h, c, tag)
            x = h
        for j in range(_RES_BLOCKS):
            conv_a, conv_b = res_convs[0 if recursive else j]
            skip = layers.Add(name=f"{tag}_res{j + 1}_add")([conv_b(conv_a(x)), x])
            x = layers.ReLU(name=f"{tag}_res{j + 1}_relu")(skip)
        if cell is not None and lstm_after_res:
            h, c = cell(x, h, c, tag)
            x = h
        if lstm_after_res:
            estimate = conv_out(x)
        else:
            estimate = layers.Add(name=f"{tag}_out")([conv_out(x), rainy])
        outputs.append(estimate)
    stacked = Stack(axis=1, name="stages")(outputs)
    return keras.Model(rainy, {"derained": outputs[-1], "stages": stacked}, name=name)


def _register(
    name: str,
    lstm: bool,
    recursive: bool,
    description: str,
    stages: int = 6,
    lstm_after_res: bool = False,
    **spec,
):
    @register(
        name,
        halo=64,
        key_map=_key_map(lstm, recursive),
        infer_config=_infer_config,
        outputs=("derained", "stages"),
        output_rule="truncate",
        description=description,
        tiny=Tiny({"stages": 2, "channels": 4}),
        phone=True,
        **spec,
    )
    def builder(stages: int = stages, channels: int = 32) -> keras.Model:
        return _progressive_network(
            name, stages, channels, lstm=lstm, recursive=recursive, lstm_after_res=lstm_after_res
        )

    builder.__name__ = name
    builder.__doc__ = f"{description} (``stages`` recurrent stages of width ``channels``)."
    return builder


#: PReNet's QAT recipe: 600 steps of one 256×256 patch lost 0.25/0.27/0.28 dB against the float
#: file over three seeds (export/REPORT.md runs 23-24), where 300 steps of the exporter's
#: default four 128×128 patches lost 0.31-0.32 dB (runs 1, 12, 19).
_PRENET_QAT = {"steps": 600, "batch_size": 1, "patch_size": 256}

prenet = _register(
    "prenet",
    lstm=True,
    recursive=False,
    description="PReNet (CVPR 2019)",
    qat_recipe=_PRENET_QAT,
)
prenet_r = _register("prenet_r", lstm=True, recursive=True, description="PReNet_r (recursive)")
prn = _register("prn", lstm=False, recursive=False, description="PRN: PReNet without LSTM")
prn_r = _register("prn_r", lstm=False, recursive=True, description="PRN_r (recursive, no LSTM)")
#: ``test_real.py`` runs ``Generator_lstm`` with ``recurrent_iter=4``.
prenet_real = _register(
    "prenet_real",
    lstm=True,
    recursive=False,
    description="PReNet's real-rain network (Generator_lstm: LSTM after the ResBlocks)",
    stages=4,
    lstm_after_res=True,
)
