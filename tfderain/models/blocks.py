"""Building blocks shared by several architectures.

Everything here is either a plain function composing built-in Keras layers (so TFMOT can quantize
the result) or a small serializable custom layer registered under the package ``tfderain``.
"""

from __future__ import annotations

from tfderain._keras import keras, tf

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="tfderain")


def conv(filters: int, kernel_size: int = 3, name: str | None = None, **kwargs) -> layers.Conv2D:
    """A stride-1 'same' convolution, the equivalent of torch ``Conv2d(k, padding=k // 2)``."""
    return layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)


@serializable
class ZerosLike(layers.Layer):
    """Zeros with the batch and spatial shape of the input and ``channels`` channels.

    Used as the initial hidden/cell state of recurrent convolutional units.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x):
        shape = tf.concat([tf.shape(x)[:-1], [self.channels]], axis=0)
        return tf.zeros(shape, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@serializable
class Stack(layers.Layer):
    """Stacks a list of same-shaped tensors along a new ``axis`` (stage outputs → ``stages``)."""

    def __init__(self, axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, xs):
        return tf.stack(xs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class ConvLSTMCell:
    """One step of a convolutional LSTM with four separate gate convolutions.

    The gate order and the ``[x, h]`` concatenation follow PReNet's official code: each gate is
    its own 3×3 convolution over ``concat([x, h])``; ``c' = f·c + i·g``, ``h' = o·tanh(c')``.
    Calling the cell again reuses the same weights (weight sharing across stages); ``tag`` makes
    the names of the per-call merge layers unique.
    """

    def __init__(self, channels: int, kernel_size: int = 3, prefix: str = "conv_"):
        self.channels = channels
        self.gates = {
            g: conv(channels, kernel_size, activation=act, name=f"{prefix}{g}")
            for g, act in (("i", "sigmoid"), ("f", "sigmoid"), ("g", "tanh"), ("o", "sigmoid"))
        }

    def __call__(self, x, h, c, tag: str):
        z = layers.Concatenate(name=f"{tag}_lstm_xh")([x, h])
        i, f, g, o = (self.gates[k](z) for k in "ifgo")
        fc = layers.Multiply(name=f"{tag}_lstm_fc")([f, c])
        ig = layers.Multiply(name=f"{tag}_lstm_ig")([i, g])
        c = layers.Add(name=f"{tag}_lstm_c")([fc, ig])
        tanh_c = layers.Activation("tanh", name=f"{tag}_lstm_tanh_c")(c)
        h = layers.Multiply(name=f"{tag}_lstm_h")([o, tanh_c])
        return h, c
