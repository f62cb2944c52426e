"""The export manifest: the one source of truth for labels, preprocessing and thresholds.

Written once by ``export/convert.py``, embedded in every artifact (TFLite metadata buffer,
ONNX ``metadata_props``) and written beside them as ``manifest.json``. Everything after
export (edge runner, benchmark) reads it and never re-types a constant.

Example:
    >>> m = Manifest(input_height=96, input_width=96, threshold=0.42)
    >>> Manifest.from_json(m.to_json()).threshold
    0.42
    >>> decode_embedded(b"junk" + encode_embedded(m) + b"junk").input_width
    96
"""
from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import DISCLAIMER
from core.metrics import apply_temperature

SCHEMA_VERSION = 6  # 2: per-artifact thresholds; 3: lesion types, colour constancy, guard, quality gate; 4: border; 5: modality output, one threshold per modality; 6: softmax output (N classes), input range and colour order read by every runner, unknown fields refused
MANIFEST_NAME = "manifest.json"
METADATA_KEY = "skinlesion_manifest"  # TFLite metadata name and ONNX metadata_props key
_MAGIC = b"SKINLESION-MANIFEST\x00"  # prefix of the embedded TFLite buffer: magic, u32 length, JSON

TRAINED_ON = (
    "ISIC Archive dermoscopic images (Kaggle 'Skin Cancer: Malignant vs. Benign'), in practice "
    "melanoma vs. melanocytic nevus; other lesion types, phone photos and dark skin are unseen"
)


PHONE_SOURCE = "pad-ufes-phone"


def trained_on(sources: list[str]) -> str:
    """The ``trained_on`` line of a several-source run (``TRAINED_ON`` is the one-source line).

    >>> trained_on(["/data/skin-lesions", "/data/ham10000-extra"])[:54]
    'dermoscopic images from skin-lesions, ham10000-extra: '
    >>> trained_on(["/d/skin-lesions", "/d/ham10000-extra", "/d/pad-ufes-phone"])[:67]
    'dermoscopic images from skin-lesions, ham10000-extra and smartphone'
    """
    names = [Path(s).name for s in sources]
    derm = ", ".join(n for n in names if n != PHONE_SOURCE)
    base = (f"dermoscopic images from {derm}: ISIC Archive (Kaggle 'Skin Cancer: Malignant vs. "
            "Benign', melanoma vs. nevus in practice) and HAM10000 (seven lesion types: nevus, "
            "melanoma, benign keratosis, basal cell carcinoma, actinic keratosis/Bowen's, "
            "dermatofibroma, vascular)")
    if PHONE_SOURCE not in names:
        return base + "; fair skin mostly, no phone photos, no other lesion types"
    return (f"dermoscopic images from {derm} and smartphone photos from {PHONE_SOURCE}: ISIC "
            "Archive (Kaggle 'Skin Cancer: Malignant vs. Benign', melanoma vs. nevus in "
            "practice), HAM10000 (seven lesion types: nevus, melanoma, benign keratosis, basal "
            "cell carcinoma, actinic keratosis/Bowen's, dermatofibroma, vascular) and "
            "PAD-UFES-20 phone photos from one Brazilian clinic (basal and squamous cell "
            "carcinoma, actinic keratosis, melanoma, nevus, seborrhoeic keratosis; 443 photos); "
            "fair skin mostly (Fitzpatrick V-VI: 2 photos), no other lesion types")


class ManifestError(ValueError):
    """A manifest is missing, unreadable or inconsistent with its model."""


OUTPUTS = ("sigmoid", "softmax")  # Manifest.output: the output layouts a runner understands
COLOR_ORDERS = ("RGB", "BGR")
RESIZES = ("center-crop-square,area",)


@dataclass(frozen=True)
class Reading:
    """What one output vector says: the label, its probabilities and the threshold used.

    ``probability``: calibrated P(positive label) when the manifest names a positive class
    (``positive_index >= 0``), else P(``label``); ``top``: every label with its calibrated
    probability, most likely first.
    """

    label: str
    probability: float
    raw_probability: float
    threshold: float | None
    top: tuple[tuple[str, float], ...]
    modality: str = ""


@dataclass
class QuantParams:
    """Affine quantization of one tensor: ``real = scale * (q - zero_point)``."""

    dtype: str = "float32"
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8") and self.scale > 0


@dataclass
class ArtifactInfo:
    """One exported file: its format name (a key of the export registry) and identity."""

    format: str
    file: str
    sha256: str = ""
    bytes: int = 0
    runtime: str = ""  # "litert" or "onnxruntime"
    input: QuantParams = field(default_factory=QuantParams)
    output: QuantParams = field(default_factory=QuantParams)
    # operating threshold chosen on this file's own validation outputs (None: the manifest's)
    threshold: float | None = None
    threshold_rule: str = ""
    # per modality, chosen the same way on that modality's validation images ({}: none)
    modality_thresholds: dict[str, float] = field(default_factory=dict)


@dataclass
class QualityGate:
    """Checks that make an input "unusable" before the model sees it (reason in the output).

    Computed on the original size and on the fitted image (centre crop + resize to the model
    input, BEFORE colour constancy), uint8 RGB; luma ``Y = 0.299 R + 0.587 G + 0.114 B`` in
    float32. In this order, the first failing check is the reason:
    ``too_small``: min(original height, width) < ``min_side`` (the only check on the original;
    the others use the fitted image);
    ``too_dark`` / ``too_bright``: mean(Y) < ``min_brightness`` / > ``max_brightness``;
    ``flat``: share of pixels with |Y - median(Y)| <= ``flat_tolerance`` > ``max_flat_fraction``
    (median of all pixels; an even count takes the mean of the two middle values);
    ``blurred``: variance of the 4-neighbour Laplacian of Y (interior pixels, no padding;
    population variance, divided by the count) < ``min_sharpness``. ``enabled=False`` (or
    ``--no-guard``) skips every check. ``edge/quality.py`` implements this; export writes the
    thresholds fitted for the model's input size (``research/quality_fit.py``). Manifests from
    before schema 3 have no gate: the runner applies ``edge.quality.gate_for_size``.
    """

    enabled: bool = True
    min_side: int = 32
    min_brightness: float = 20.0
    max_brightness: float = 240.0
    flat_tolerance: float = 6.0
    max_flat_fraction: float = 0.9
    min_sharpness: float = 0.0
    fitted_on: str = ""


@dataclass
class Guard:
    """The out-of-distribution guard: output ``index`` of the model holds an in-distribution
    score in [0, 1]; below ``threshold`` the input is ``not_a_lesion`` (no benign/malignant)."""

    method: str = ""
    index: int = -1
    threshold: float = 0.5
    rule: str = ""
    fitted_on: str = ""
    stats: dict[str, Any] = field(default_factory=dict)  # pass/reject rates measured at export


@dataclass
class Manifest:
    """Everything a runtime needs to use an exported model correctly.

    The model takes raw RGB pixels in ``pixel_range`` (it scales them itself) shaped
    ``(1, input_height, input_width, 3)``, after ``resize``, ``border`` and ``color_constancy``
    (``edge.preprocess.fit_to_input``). Its ONE output tensor is a vector:
    index 0 is the probability of ``labels[positive_index]`` (schema <= 2: the only value);
    indices ``1 .. len(classes)`` are the lesion-type probabilities in the order of
    ``classes`` (when the model knows types); ``modality_index`` (schema 5, when >= 0) is
    P(``modalities[1]``), e.g. P(phone photo): the image's modality is ``modalities[1]`` when
    it is >= 0.5, else ``modalities[0]``, and that modality's entry of
    ``modality_thresholds`` replaces ``threshold``; ``guard.index`` (when a guard is fitted)
    is the in-distribution score. ``threshold`` applies to the *calibrated* probability
    ``sigmoid(logit(p) / temperature)``.

    ``output == "softmax"`` (schema 6, any image classifier): indices ``0 .. len(labels) - 1``
    hold the probability of each label in the order of ``labels`` (they sum to 1), then the
    guard when fitted. The label is the most likely one; when a positive class is named
    (``positive_index >= 0``) it is that class whenever its calibrated probability reaches
    ``threshold``, else the most likely of the others. ``temperature`` divides the log
    probabilities (``softmax(log p / T)``, exact temperature scaling of the logits).
    ``positive_index == -1``: no positive class, no threshold.

    Every runner feeds the model ``pixel_range`` (the 0..255 pixels mapped linearly) in
    ``color_order`` (``edge.preprocess.model_pixels``) and refuses a manifest whose fields it
    does not understand (``validate``).
    """

    input_height: int = 224
    input_width: int = 224
    channels: int = 3
    color_order: str = "RGB"
    pixel_range: tuple[float, float] = (0.0, 255.0)
    resize: str = "center-crop-square,area"  # see edge.preprocess.fit_to_input
    color_constancy: str = "none"  # "none" | "shades_of_gray" (edge.preprocess)
    border: str = "none"  # "none" | "fill_dark": a dark dermoscope ring filled (edge.preprocess)
    labels: tuple[str, ...] = ("benign", "malignant")
    # lesion types (HAM10000 dx codes) at output indices 1..len(classes); () when none
    classes: tuple[str, ...] = ()
    class_names: dict[str, str] = field(default_factory=dict)  # code -> readable name
    malignant_classes: tuple[str, ...] = ()
    # schema 5: modality output (index of P(modalities[1])) and one threshold per modality
    modalities: tuple[str, ...] = ()
    modality_index: int = -1
    modality_thresholds: dict[str, float] = field(default_factory=dict)
    modality_threshold_rules: dict[str, str] = field(default_factory=dict)
    guard: Guard | None = None
    quality: QualityGate = field(default_factory=lambda: QualityGate(enabled=False))
    positive_index: int = 1
    output: str = "sigmoid"
    threshold: float = 0.5
    threshold_rule: str = "default 0.5"
    temperature: float = 1.0
    model_name: str = ""
    run_id: str = ""
    trained_on: str = ""  # what the model was trained on (export writes it from the data)
    disclaimer: str = DISCLAIMER
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, ArtifactInfo] = field(default_factory=dict)
    created: str = ""
    schema: int = SCHEMA_VERSION

    # ----------------------------------------------------------------- derived values
    @property
    def positive_label(self) -> str:
        """The class the threshold is for (``""``: a softmax without one)."""
        return self.labels[self.positive_index] if self.positive_index >= 0 else ""

    @property
    def output_size(self) -> int:
        """Length of the model's output vector this manifest describes.

            >>> Manifest().output_size, Manifest(classes=("mel", "nv")).output_size
            (1, 3)
            >>> Manifest(classes=("mel", "nv"), guard=Guard(index=3)).output_size
            4
            >>> Manifest(classes=("mel", "nv"), modality_index=3, guard=Guard(index=4)).output_size
            5
        """
        head = len(self.labels) if self.output == "softmax" else 1 + len(self.classes)
        n = max(head, self.modality_index + 1)
        return max(n, self.guard.index + 1) if self.guard else n

    def validate(self) -> "Manifest":
        """``self``, or ``ManifestError`` naming the first field this runner does not understand.

            >>> Manifest(output="softmax", labels=("a", "b", "c"), positive_index=-1).validate().output
            'softmax'
            >>> Manifest(output="multilabel").validate()
            Traceback (most recent call last):
            ...
            edge.manifest.ManifestError: manifest field output='multilabel' is not understood (known: sigmoid, softmax); export the model again with this version, or upgrade the runner
        """
        def bad(name: str, value, known) -> ManifestError:
            return ManifestError(f"manifest field {name}={value!r} is not understood (known: "
                                 f"{', '.join(map(str, known))}); export the model again with "
                                 "this version, or upgrade the runner")
        from edge.preprocess import BORDERS, COLOR_CONSTANCY

        for name, known in (("output", OUTPUTS), ("color_order", COLOR_ORDERS),
                            ("resize", RESIZES), ("color_constancy", COLOR_CONSTANCY),
                            ("border", BORDERS)):
            if getattr(self, name) not in known:
                raise bad(name, getattr(self, name), known)
        lo, hi = (float(v) for v in self.pixel_range)
        if len(self.pixel_range) != 2 or not lo < hi:
            raise ManifestError(f"manifest field pixel_range={list(self.pixel_range)} is not "
                                "[low, high] with low < high")
        if self.channels != 3:
            raise bad("channels", self.channels, (3,))
        n = len(self.labels)
        if n < 2 or len(set(self.labels)) != n:
            raise ManifestError(f"manifest field labels={list(self.labels)} needs 2 or more "
                                "distinct class names")
        if self.output == "sigmoid" and (n != 2 or self.positive_index not in (0, 1)):
            raise ManifestError("a sigmoid manifest needs 2 labels and positive_index 0 or 1, "
                                f"got {list(self.labels)} and {self.positive_index}")
        if not -1 <= self.positive_index < n:
            raise bad("positive_index", self.positive_index, range(-1, n))
        return self

    def modality_of(self, vector) -> str:
        """The image's modality from its output vector (``""`` without a modality output).

            >>> m = Manifest(modalities=("dermoscopic", "phone"), modality_index=1)
            >>> m.modality_of([0.3, 0.9]), m.modality_of([0.3, 0.2]), Manifest().modality_of([0.3])
            ('phone', 'dermoscopic', '')
        """
        if self.modality_index < 0 or len(self.modalities) < 2:
            return ""
        return self.modalities[int(float(vector[self.modality_index]) >= 0.5)]

    def threshold_for(self, modality: str) -> float:
        """The operating threshold for an image of ``modality`` (``threshold`` when the
        manifest has none for it).

            >>> Manifest(threshold=0.2, modality_thresholds={"phone": 0.6}).threshold_for("phone")
            0.6
        """
        return float(self.modality_thresholds.get(modality, self.threshold))

    def class_probabilities(self, vector) -> dict[str, float]:
        """Lesion-type probabilities from one output vector (``{}`` without types)."""
        return {c: float(vector[1 + i]) for i, c in enumerate(self.classes)}

    def read(self, vector) -> Reading:
        """The label of one (dequantized) output vector, as every runner must read it.

            >>> Manifest(threshold=0.3).read([0.4]).label
            'malignant'
            >>> m = Manifest(output="softmax", labels=("cat", "dog", "fox"), positive_index=-1)
            >>> r = m.read([0.2, 0.5, 0.3]); r.label, r.top[1]
            ('dog', ('fox', 0.3))
            >>> m = Manifest(output="softmax", labels=("a", "b", "c"), positive_index=0, threshold=0.2)
            >>> m.read([0.25, 0.5, 0.25]).label, m.read([0.1, 0.3, 0.6]).label
            ('a', 'c')
        """
        if self.output == "softmax":
            return self._read_softmax(vector)
        raw = float(vector[0])
        p = self.calibrate(raw)
        modality = self.modality_of(vector)
        thr = self.threshold_for(modality)
        pos, neg = self.positive_index, 1 - self.positive_index
        label = self.labels[pos if p >= thr else neg]
        top = sorted(((self.labels[pos], p), (self.labels[neg], 1.0 - p)), key=lambda t: -t[1])
        return Reading(label, p, raw, thr, tuple(top), modality)

    def _read_softmax(self, vector) -> Reading:
        n = len(self.labels)
        raw = np.clip(np.asarray(vector[:n], np.float64), 0.0, None)
        probs = raw if self.temperature == 1 else _soften(raw, self.temperature)
        order = sorted(range(n), key=lambda i: (-probs[i], i))
        top = tuple((self.labels[i], float(probs[i])) for i in order)
        pos = self.positive_index
        if pos < 0:
            i = order[0]
            return Reading(self.labels[i], float(probs[i]), float(raw[i]), None, top)
        thr = float(self.threshold)
        i = pos if probs[pos] >= thr else next(j for j in order if j != pos)
        return Reading(self.labels[i], float(probs[pos]), float(raw[pos]), thr, top)

    def calibrate(self, probability: float) -> float:
        """Temperature-scaled probability (identity when ``temperature == 1``).

        ``core.metrics.apply_temperature``, the function export uses to choose each file's
        threshold and to score parity, so a probability that lands exactly on the threshold
        (common with int8 outputs, which take 256 values) gets the same label here as there,
        to the last bit.
        """
        return float(apply_temperature(np.float64(probability), self.temperature))

    def label_for(self, calibrated_probability: float) -> str:
        """The binary label at ``threshold`` (sigmoid manifests)."""
        pos = calibrated_probability >= self.threshold
        return self.labels[self.positive_index if pos else 1 - self.positive_index]

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        if not isinstance(d, dict):
            raise ManifestError("manifest is not a JSON object")
        schema = int(d.get("schema", SCHEMA_VERSION))
        if schema > SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema {schema} is newer than this runner ({SCHEMA_VERSION}); "
                "upgrade the edge package"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ManifestError(f"manifest field {unknown[0]!r} is not understood by this runner "
                                f"(schema {SCHEMA_VERSION}); export the model again with this "
                                "version, or upgrade the runner")
        kw = {k: v for k, v in d.items() if k in known}
        arts = {}
        for name, a in (kw.pop("artifacts", None) or {}).items():
            a = {k: v for k, v in a.items() if k in _ARTIFACT_FIELDS}
            a["input"] = QuantParams(**a.get("input", {}))
            a["output"] = QuantParams(**a.get("output", {}))
            arts[name] = ArtifactInfo(**a)
        for key in ("labels", "pixel_range", "classes", "malignant_classes", "modalities"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if kw.get("guard") is not None:
            kw["guard"] = Guard(**_known(Guard, kw["guard"]))
        if "quality" in kw:
            kw["quality"] = QualityGate(**_known(QualityGate, kw["quality"] or {}))
        return cls(artifacts=arts, **kw).validate()

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
            raise ManifestError(f"manifest is not valid JSON ({e})") from e

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        try:
            return cls.from_json(path.read_bytes())
        except OSError as e:
            raise ManifestError(f"{path}: cannot read manifest ({e.strerror})") from e
        except ManifestError as e:
            raise ManifestError(f"{path}: {e}") from e

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file then rename)."""
        from core.atomic import atomic_write_bytes

        return atomic_write_bytes(Path(path), self.to_json().encode())

    def artifact_for(self, model_path: str | Path) -> ArtifactInfo | None:
        """The artifact entry whose file name matches ``model_path``, if any."""
        name = Path(model_path).name
        for art in self.artifacts.values():
            if Path(art.file).name == name:
                return art
        return None

    def for_artifact(self, model_path: str | Path) -> "Manifest":
        """This manifest as ``model_path`` uses it: its own threshold, when it has one.

        An int8 file's outputs differ slightly from the float model's, so export chooses its
        threshold again, with the same rule, on its own validation outputs.

            >>> m = Manifest(threshold=0.3, artifacts={"q": ArtifactInfo("q", "q.tflite", threshold=0.28)})
            >>> m.for_artifact("models/q.tflite").threshold, m.for_artifact("x.onnx").threshold
            (0.28, 0.3)
        """
        art = self.artifact_for(model_path)
        if art is None or art.threshold is None:
            return self
        return dataclasses.replace(self, threshold=float(art.threshold),
                                   threshold_rule=art.threshold_rule or self.threshold_rule,
                                   modality_thresholds=dict(art.modality_thresholds
                                                            or self.modality_thresholds))


_ARTIFACT_FIELDS = {f.name for f in dataclasses.fields(ArtifactInfo)}


def _soften(p: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: temperature scaling of a softmax output's logits."""
    z = np.log(np.maximum(p, 1e-12)) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def _known(cls, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def encode_embedded(manifest: Manifest) -> bytes:
    """Bytes stored in a TFLite metadata buffer: magic, little-endian u32 length, JSON."""
    payload = manifest.to_json().encode()
    return _MAGIC + struct.pack("<I", len(payload)) + payload


def decode_embedded(data: bytes) -> Manifest | None:
    """Find an embedded manifest in raw model bytes (TFLite file); ``None`` if absent."""
    i = data.rfind(_MAGIC)
    if i < 0:
        return None
    start = i + len(_MAGIC)
    (n,) = struct.unpack("<I", data[start : start + 4])
    return Manifest.from_json(data[start + 4 : start + 4 + n])


def find_manifest(model_path: str | Path) -> Manifest:
    """Manifest for a model file: the sidecar ``manifest.json`` beside it, else the embedded one.

    Raises ``ManifestError`` naming the file and the fix when neither exists.
    """
    model_path = Path(model_path)
    sidecar = model_path.with_name(MANIFEST_NAME)
    if sidecar.is_file():
        return Manifest.load(sidecar)
    embedded = read_embedded(model_path)
    if embedded is not None:
        return embedded
    raise ManifestError(
        f"{model_path}: no {MANIFEST_NAME} beside it and none embedded; "
        "copy the manifest.json written by export/convert.py next to the model"
    )


def read_embedded(model_path: Path) -> Manifest | None:
    """Embedded manifest of a .tflite (metadata buffer) or .onnx (metadata_props) file."""
    try:
        data = model_path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{model_path}: cannot read model ({e.strerror})") from e
    if model_path.suffix.lower() == ".onnx":
        return _onnx_embedded(data)
    return decode_embedded(data)


def _onnx_embedded(data: bytes) -> Manifest | None:
    # metadata_props is a protobuf string map; the JSON value is stored verbatim, so the
    # magic-free JSON can be found by key without importing onnx (not on the device).
    key = METADATA_KEY.encode()
    i = data.rfind(key)
    if i < 0:
        return None
    j = data.find(b"{", i)
    if j < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(data[j:].decode("utf-8", "replace"))
    except json.JSONDecodeError:
        return None
    return Manifest.from_dict(obj)
