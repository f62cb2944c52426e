"""The out-of-distribution guard: fitted at export, carried in the artifact as its last output.

Method (``METHOD``): a Gaussian fitted to the penultimate features (the output of the layer
named ``features`` where the model has one, else the input of its final Dense layer) of the
training images,
with a Ledoit-Wolf shrunk covariance, PCA-whitened to its ``k`` directions of SMALLEST variance
(the minor components: lesion features barely move along them, anything else does; the top
components, which carry the lesion-to-lesion variation, rejected almost nothing). The distance
of an image is the L1 norm of its whitened feature, each component clipped at ``CLIP`` (6
standard deviations), and the score is ``clip(0.5 + (tau - d) / (2 width), 0, 1)``; the
guard passes an image when its score >= 0.5, i.e. ``d <= tau``. ``tau`` is chosen on the
run's validation images so that >= 99% of them pass, ``width`` is the spread of the
validation distances (the score is 1 for typical lesions and 0 far outside).

With generated non-lesion images (``export/nonlesions.py``; nothing downloaded), a second
statistic joins it (method ``gaussian-minor-l1+lda``): the projection of the features on a
shrunk Fisher discriminant between the training lesions and those images, scored the same
way; the artifact outputs the minimum of the two scores, one operating point for both.
Measured on MobileNetV2-0.35 @ 128 px (3 epochs; float features): the Gaussian part alone
rejected 54% of generated and 83% of real scikit-image photo crops; with the discriminant
100% and 97-98%, while 99.4% of test and 99.3% of ham10000-extra lesions still pass.

int8: the covariance gets a noise floor and the operating point is chosen on validation
features with simulated int8 noise (``NOISE_FLOOR``, measured on full-int8 MobileNetV2-0.35),
so minor directions that lesions never move along (dead or duplicated features) cannot turn
quantization noise into "not a lesion".

Why L1, clipped, piecewise linear: it survives full int8 quantization without seeing a single
non-lesion image in calibration. ``relu6(+z)`` and ``relu6(-z)`` are two fused-ReLU6 dense
outputs with a fixed [0, 6] range (never a range stretched by outliers), their sum is an int32
accumulation, and the clipped score lives in [0, 1] like P(malignant), so both share the
output vector's quantization. A squared (L2) distance or a sigmoid would need the
quantizer to have seen far-out images, or clamp them to an in-distribution value.

Example:
    >>> fit = fit_guard(train_feats, val_feats, k=64)                # doctest: +SKIP
    >>> guarded = guarded_model(model, fit)                          # doctest: +SKIP
    >>> guarded.output_shape                                         # doctest: +SKIP
    (None, 2)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.digits import down, pct

METHOD = "gaussian-minor-l1"
CLIP = 6.0
PASS_RATE = 0.99  # share of validation lesion images the operating point keeps
DEFAULT_K = 128  # k = 32..128 measured alike (module docstring); 128 rejected most photos
LDA_REG = 0.1  # extra ridge on the discriminant's covariance (share of its mean variance)
# int8 noise floor added to the Gaussian's covariance (share of its mean variance): full-int8
# MobileNetV2-0.35 moved its pooled features by a variance of 2.8% of theirs (measured,
# 200 validation images); without the floor, near-degenerate minor directions (correlated or
# dead features) amplify that noise and int8 rejected every lesion.
NOISE_FLOOR = 0.03
GUARD_PREFIX = "guard_"  # layer names; ONNX/TFLite op names carry them
# The toolkit's contract: a layer with this name outputs the penultimate representation
# (research/typed_head.py's ``features``); models without it use the final Dense's input.
FEATURES_LAYER = "features"


@dataclass
class GuardFit:
    """Everything the in-graph guard needs (float64 here; the graph holds float32 copies).

    Gaussian part: ``z = (f - mean) @ projection``, ``d = sum min(|z|, clip)``; discriminant
    part (optional): ``l = f @ direction``. Score ``min(s_d, s_l)`` with
    ``s_d = clip(0.5 + (tau - d) / (2 width), 0, 1)`` and ``s_l`` likewise from ``l``.
    """

    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, k) whitening
    tau: float
    width: float
    clip: float = CLIP
    direction: np.ndarray | None = None  # (D,) lesion -> non-lesion discriminant
    l_tau: float = 0.0
    l_width: float = 1.0
    n_train: int = 0
    n_val: int = 0
    n_negative: int = 0
    val_pass: float = float("nan")

    @property
    def k(self) -> int:
        return int(self.projection.shape[1])

    def distance(self, feats: np.ndarray) -> np.ndarray:
        z = (np.asarray(feats, np.float64) - self.mean) @ self.projection
        return np.minimum(np.abs(z), self.clip).sum(axis=1)

    def projection_l(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(feats, np.float64) @ self.direction

    def score(self, feats: np.ndarray) -> np.ndarray:
        """The in-distribution score in [0, 1] (what the artifact outputs, in float)."""
        s = np.clip(0.5 + (self.tau - self.distance(feats)) / (2 * self.width), 0.0, 1.0)
        if self.direction is None:
            return s
        s_l = np.clip(0.5 + (self.l_tau - self.projection_l(feats)) / (2 * self.l_width), 0, 1)
        return np.minimum(s, s_l)

    def describe(self) -> str:
        both = (f" and its projection on a lesion-vs-generated-non-lesion discriminant "
                f"(shrunk LDA, {self.n_negative} generated images) <= {down(self.l_tau, 3)}"
                if self.direction is not None else "")
        return (f"pass when score >= 0.5, i.e. the clipped L1 distance of the whitened "
                f"penultimate features (k={self.k} minor components) <= {down(self.tau, 3)}{both}; "
                f"chosen so that {pct(self.val_pass)} of {self.n_val} validation images pass "
                f"(target >= {pct(PASS_RATE, 0)})")


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf shrunk covariance of centred rows ``x`` (as scikit-learn computes it)."""
    n, p = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / p
    delta = np.sum((s - mu * np.eye(p)) ** 2) / p
    x2 = x ** 2
    beta = min((np.sum(x2.T @ x2) / n - np.sum(s ** 2)) / (n * p), delta)
    shrink = beta / delta if delta > 0 else 1.0
    return (1 - shrink) * s + shrink * mu * np.eye(p)


def fit_gaussian(feats: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, whitening projection ``(D, k)`` onto the ``k`` smallest-variance directions of
    the shrunk covariance plus the int8 noise floor)."""
    f = np.asarray(feats, np.float64)
    mean = f.mean(axis=0)
    cov = ledoit_wolf(f - mean)
    cov += NOISE_FLOOR * np.trace(cov) / len(cov) * np.eye(len(cov))
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[:min(k, f.shape[1])]
    return mean, vecs[:, order] / np.sqrt(np.maximum(vals[order], 1e-12))


def operating_point(d_val: np.ndarray, pass_rate: float = PASS_RATE) -> tuple[float, float]:
    """(tau, width): the smallest tau keeping ``pass_rate`` of ``d_val`` (half-way to the next
    distance, so rounding does not flip the last kept image) and the distances' spread.

        >>> operating_point(np.arange(1.0, 101.0), 0.99)
        (99.5, 49.5)
    """
    d = np.sort(np.asarray(d_val, np.float64))
    keep = int(np.ceil(pass_rate * len(d)))
    tau = float(d[keep - 1] if keep >= len(d) else (d[keep - 1] + d[keep]) / 2)
    width = float(max(np.percentile(d, 75) - np.percentile(d, 25), 1e-6))
    return tau, width


def discriminant(lesions: np.ndarray, negatives: np.ndarray, reg: float = LDA_REG) -> np.ndarray:
    """Fisher direction ``(S + reg * mean(diag S) * I)^-1 (mu_neg - mu_lesion)``, pooled
    Ledoit-Wolf covariance ``S``: large projections look like the negatives."""
    les, neg = np.asarray(lesions, np.float64), np.asarray(negatives, np.float64)
    x = np.concatenate([les - les.mean(0), neg - neg.mean(0)])
    cov = ledoit_wolf(x)
    cov += reg * np.trace(cov) / len(cov) * np.eye(len(cov))
    return np.linalg.solve(cov, neg.mean(0) - les.mean(0))


def with_int8_noise(train_feats: np.ndarray, feats: np.ndarray, seed: int = 0) -> np.ndarray:
    """``feats`` plus Gaussian noise of variance ``NOISE_FLOOR`` x the mean training feature
    variance: what full-int8 inference does to them. The operating point is chosen on these,
    so a quantized artifact's lesions stay above it (a float one passes a few more)."""
    var = NOISE_FLOOR * float(np.mean(np.var(np.asarray(train_feats, np.float64), axis=0)))
    rng = np.random.default_rng(seed)
    return np.asarray(feats, np.float64) + rng.normal(0.0, np.sqrt(var), np.shape(feats))


def fit_guard(train_feats: np.ndarray, val_feats: np.ndarray, k: int = DEFAULT_K,
              pass_rate: float = PASS_RATE, negatives: np.ndarray | None = None) -> GuardFit:
    """Fit on training features (and generated ``negatives``, when given); choose the
    operating point on validation features (with simulated int8 noise) so that ``pass_rate``
    of them pass.

    With negatives, the two statistics are put on one scale (each divided by its own
    validation spread) and one threshold on their maximum is chosen, then split back.
    """
    mean, proj = fit_gaussian(train_feats, k)
    g = GuardFit(mean, proj, 0.0, 1.0, n_train=len(train_feats), n_val=len(val_feats))
    noisy = with_int8_noise(train_feats, val_feats)
    d_val = g.distance(noisy)
    g.tau, g.width = operating_point(d_val, pass_rate)
    if negatives is not None and len(negatives):
        g.direction = discriminant(train_feats, negatives)
        g.n_negative = len(negatives)
        l_val = g.projection_l(noisy)
        d0, _ = operating_point(d_val, 0.5)
        l0, g.l_width = operating_point(l_val, 0.5)
        span_d = max(np.percentile(d_val, 99) - d0, 1e-6)
        span_l = max(np.percentile(l_val, 99) - l0, 1e-6)
        theta, _ = operating_point(np.maximum((d_val - d0) / span_d, (l_val - l0) / span_l),
                                   pass_rate)
        g.tau, g.l_tau = d0 + theta * span_d, l0 + theta * span_l
    g.val_pass = float(np.mean(g.score(val_feats) >= 0.5))
    return g


# ---- Keras graph ----------------------------------------------------------------------------

def outputs_and_features(model):
    """(input, output tensor, penultimate features tensor) of ``model``.

    The features are the output of the layer named ``FEATURES_LAYER`` (``features``): the
    toolkit's own contract for "the penultimate representation" (the lesion-type model of
    ``research/typed_head.py`` names it so). A model without that layer must end in a Dense
    layer, and its input is taken.
    """
    import keras

    try:
        return model.inputs[0], model.outputs[0], model.get_layer(FEATURES_LAYER).output
    except ValueError:
        pass
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(f"{model.name}: no layer named {FEATURES_LAYER!r} and the last layer is "
                         f"{type(last).__name__}, not the Dense head the guard reads its "
                         "features from")
    return model.inputs[0], model.outputs[0], last.input


def feature_model(model):
    """A Keras model: image -> [original output, penultimate features]."""
    import keras

    inp, out, feats = outputs_and_features(model)
    return keras.Model(inp, [out, feats], name=f"{model.name}_features")


def extract(model, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(outputs ``[N, C]``, features ``[N, D]``) of uint8 images fed as float32 0..255."""
    fm = feature_model(model)
    out, feats = fm.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(out, np.float64), np.asarray(feats, np.float64)


def guarded_model(model, fit: GuardFit):
    """``model`` with the guard score appended to its output vector (one output tensor)."""
    import keras
    from keras import layers

    inp, out, feats = outputs_and_features(model)
    k = fit.k
    w = fit.projection.astype(np.float32)
    b = -(fit.mean @ fit.projection).astype(np.float32)
    halves = layers.Dense(2 * k, activation="relu6", name=f"{GUARD_PREFIX}whiten")
    h = halves(feats)  # [relu6(z), relu6(-z)]: min(|z|, 6) split in two non-negative halves
    halves.set_weights([np.concatenate([w, -w], axis=1), np.concatenate([b, -b])])
    if fit.clip != 6.0:
        raise ValueError("the in-graph clip is relu6: fit the guard with clip=6")
    score = layers.Dense(1, name=f"{GUARD_PREFIX}score")
    s = score(h)
    score.set_weights([np.full((2 * k, 1), -1.0 / (2 * fit.width), np.float32),
                       np.array([0.5 + fit.tau / (2 * fit.width)], np.float32)])
    s = layers.ReLU(max_value=1.0, name=f"{GUARD_PREFIX}clip")(s)
    if fit.direction is not None:
        lda = layers.Dense(1, name=f"{GUARD_PREFIX}discriminant")
        s_l = lda(feats)
        lda.set_weights([(-fit.direction / (2 * fit.l_width)).astype(np.float32)[:, None],
                         np.array([0.5 + fit.l_tau / (2 * fit.l_width)], np.float32)])
        s_l = layers.ReLU(max_value=1.0, name=f"{GUARD_PREFIX}discriminant_clip")(s_l)
        s = layers.Minimum(name=f"{GUARD_PREFIX}score_min")([s, s_l])
    vec = layers.Concatenate(name="output_vector")([out, s])
    return keras.Model(inp, vec, name=model.name)
