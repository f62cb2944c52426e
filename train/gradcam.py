"""Grad-CAM heatmaps for the project's Sequential models (seed_cnn and mobilenetv2).

The class-activation map is taken at the last convolutional feature map: the input of the
global pooling layer (seed_cnn) or the backbone's ``out_relu`` (mobilenetv2).

Example:
    >>> maps = gradcam(model, images_uint8)      # doctest: +SKIP
    >>> maps.shape == images_uint8.shape[:3]     # doctest: +SKIP
    True
"""
from __future__ import annotations

import cv2
import numpy as np

from train.models import BACKBONE_NAME


def _forward(model, x, tape):
    """Run ``model`` layer by layer; return (last conv features, probability)."""
    import keras

    h, feats = x, None
    for layer in model.layers:
        if layer.name == BACKBONE_NAME:
            inner = keras.Model(layer.inputs, [layer.get_layer("out_relu").output, layer.output])
            feats, h = inner(h, training=False)
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            feats = h
            h = layer(h)
        else:
            h = layer(h, training=False)
    if feats is None:
        raise ValueError("no convolutional feature map found for Grad-CAM")
    return feats, h


def gradcam(model, images: np.ndarray) -> np.ndarray:
    """Heatmaps in [0, 1], one per image (``images``: uint8 at the model's input size),
    resized to the image size."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images.astype("float32"))
    with tf.GradientTape() as tape:
        feats, prob = _forward(model, x, tape)
        score = tf.reduce_sum(prob)
    grads = tape.gradient(score, feats)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1)).numpy()
    out = []
    for c in cam:
        c = c / c.max() if c.max() > 0 else c
        out.append(cv2.resize(c, images.shape[2:0:-1], interpolation=cv2.INTER_LINEAR))
    return np.stack(out)
