"""Training configuration: one dataclass, saved as ``config.json`` in every run folder.

Example:
    >>> TrainConfig(model="seed_cnn", image_size=96).phases()
    [('train', 20, 0.001)]
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

MODELS = ("seed_cnn", "mobilenetv2",
          "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainConfig:
    data: str = ""
    model: str = "mobilenetv2"
    alpha: float = 0.35
    weights: str = "imagenet"
    image_size: int = 128
    epochs: int = 20  # head (mobilenetv2) or whole-model (seed_cnn) epochs
    fine_tune_epochs: int = 10  # mobilenetv2 only: epochs with the top blocks unfrozen
    fine_tune_layers: int = 40  # backbone layers unfrozen for fine-tuning
    batch_size: int = 32
    lr: float = 1e-3
    fine_tune_lr: float = 1e-4
    dropout: float | None = None
    label_smoothing: float = 0.0
    class_weight: bool = True
    patience: int = 5
    schedule: str = "plateau"  # plateau: halve the LR when val AUC stalls, stop early; cosine
    ema: bool = False  # evaluate and keep an exponential moving average of the weights
    val_fraction: float = 0.15
    exclude_leaked: bool = True
    seed: int = 0  # weights, shuffling, augmentation (and the split unless split_seed >= 0)
    split_seed: int = -1  # validation split; -1: use seed. Runs compared on one split share it
    deterministic: bool = True
    strategy: str = "default"
    out: str = ""
    run_id: str = ""
    # the classes (label-index order, from the data) and the positive class ("": none)
    labels: list[str] = field(default_factory=list)
    positive: str = ""
    trained_on: str = ""  # provenance line for the manifest (default: from the data)

    @property
    def head(self) -> str:
        """``sigmoid`` (two classes, one of them positive) or ``softmax`` (any other case).

            >>> TrainConfig(labels=["benign", "malignant"], positive="malignant").head
            'sigmoid'
            >>> TrainConfig(labels=["a", "b", "c"], positive="a").head
            'softmax'
        """
        return "sigmoid" if len(self.labels) == 2 and self.positive else "softmax" \
            if self.labels else "sigmoid"

    @property
    def outputs(self) -> int:
        """Width of the model's output: 1 (sigmoid) or the class count (softmax)."""
        return 1 if self.head == "sigmoid" else len(self.labels)

    @property
    def val_seed(self) -> int:
        """The seed that draws the validation split."""
        return self.split_seed if self.split_seed >= 0 else self.seed

    def split_differences(self, other: "TrainConfig") -> list[str]:
        """Settings that make ``other``'s validation (or headline test) split differ from this."""
        keys = ("val_seed", "val_fraction", "exclude_leaked")
        return [k for k in keys if getattr(self, k) != getattr(other, k)]

    def phases(self) -> list[tuple[str, int, float]]:
        """(name, epochs, learning rate) for each training phase."""
        if self.model in MODELS[1:]:  # an ImageNet backbone: frozen head, then fine-tune
            return [("head", self.epochs, self.lr),
                    ("finetune", self.fine_tune_epochs, self.fine_tune_lr)]
        return [("train", self.epochs, self.lr)]

    def save(self, path: Path) -> None:
        from core.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        d = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
