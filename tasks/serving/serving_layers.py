"""The two small layers the exported model needs in front of a user's table's model: missing
values filled as training imputed them. They use TensorFlow's ops (the export is a TensorFlow
SavedModel, which traces them once); Keras has no string ops of its own."""
from __future__ import annotations

import keras
import numpy as np


class FillMissing(keras.layers.Layer):
    """NaN in column j becomes ``fill[j]`` (the train median); no fill: the values pass unchanged."""

    def __init__(self, fill: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self.fill = None if fill is None else np.asarray(fill, np.float32)

    def call(self, x):
        if self.fill is None:
            return x
        return keras.ops.where(keras.ops.isnan(x), keras.ops.convert_to_tensor(self.fill), x)


class FillMissingText(keras.layers.Layer):
    """An empty string becomes ``fill`` (the most frequent train category); no fill: unchanged."""

    def __init__(self, fill: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.fill = fill

    def call(self, x):
        import tensorflow as tf

        return x if self.fill is None else tf.where(tf.equal(x, ""), tf.constant(self.fill), x)
