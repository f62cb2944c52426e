"""End-to-end training and evaluation from the CLIs, on synthetic data and a real slice."""
import csv
import json

import keras
import numpy as np
import pytest

from train import evaluate as evaluate_cli
from train import train as train_cli

FAST = ["--epochs", "2", "--batch-size", "16", "--image-size", "32", "--patience", "3", "-q"]


@pytest.fixture(scope="module")
def seed_run(synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "seed"
    rc = train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn",
                         "--val-fraction", "0.25", "--out", str(out), *FAST])
    assert rc == 0
    return out


def test_train_writes_run_folder(seed_run, capsys):
    for name in ("model.keras", "config.json", "history.csv", "curves.png", "train_summary.json"):
        assert (seed_run / name).is_file(), name
    cfg = json.loads((seed_run / "config.json").read_text())
    assert cfg["model"] == "seed_cnn" and cfg["image_size"] == 32
    rows = list(csv.DictReader(open(seed_run / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and "val_auc" in rows[0]
    m = keras.models.load_model(seed_run / "model.keras", compile=False)
    assert m.input_shape == (None, 32, 32, 3)


def test_refuses_to_overwrite_a_run(seed_run, synthetic_dataset, capsys):
    rc = train_cli.main(["--data", str(synthetic_dataset), "--out", str(seed_run), *FAST])
    assert rc == 2 and "--resume" in capsys.readouterr().err


def test_missing_dataset_is_one_clear_line(tmp_path, capsys):
    rc = train_cli.main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "kaggle.com" in err and len(err.splitlines()) == 1


def test_same_seed_same_metrics(seed_run, synthetic_dataset, tmp_path):
    out = tmp_path / "again"
    assert train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn",
                           "--val-fraction", "0.25", "--out", str(out), *FAST]) == 0
    a = list(csv.DictReader(open(seed_run / "history.csv")))
    b = list(csv.DictReader(open(out / "history.csv")))
    for ra, rb in zip(a, b):
        assert float(ra["val_loss"]) == pytest.approx(float(rb["val_loss"]), abs=1e-3)


def test_resume_after_interruption(synthetic_dataset, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    args = ["--data", str(synthetic_dataset), "--model", "seed_cnn", "--val-fraction", "0.25",
            "--out", str(out), *FAST, "--epochs", "3"]
    original = keras.callbacks.CSVLogger.on_epoch_end

    def crash_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt  # the user pressed Ctrl-C after epoch 1

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_cli.main(args)
    assert not (out / "model.keras").exists()  # no half-finished model that looks valid
    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", original)
    assert train_cli.main(["--out", str(out), "--resume", "-q"]) == 0
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(out / "history.csv"))]
    assert epochs == [0, 1, 2]  # continued at epoch 2, nothing repeated
    assert (out / "model.keras").is_file()


def test_evaluate_writes_metrics_and_report(seed_run, capsys):
    assert evaluate_cli.main(["--run", str(seed_run), "--bootstrap", "50", "--gradcam", "2"]) == 0
    m = json.loads((seed_run / "metrics.json").read_text())
    for key in ("threshold", "temperature", "test", "test_full", "test_at_0.5", "calibration"):
        assert key in m
    t = m["test"]
    assert 0 <= t["accuracy"] <= 1 and t["tp"] + t["fn"] + t["tn"] + t["fp"] == m["n_test"]
    lo, hi = t["ci95"]["accuracy"]
    assert lo <= t["accuracy"] <= hi
    assert m["val"]["sensitivity"] >= 0.95  # the threshold was chosen for this on validation
    report = (seed_run / "report.md").read_text()
    assert "not a medical device" in report
    for fig in ("roc", "pr", "confusion", "reliability", "samples", "gradcam"):
        assert f"({fig}.png)" in report and (seed_run / f"{fig}.png").stat().st_size > 1000
    assert "export/convert.py" in capsys.readouterr().out


def test_evaluate_without_run_is_clear(tmp_path, capsys):
    assert evaluate_cli.main(["--run", str(tmp_path)]) == 2
    assert "train first" in capsys.readouterr().err


@pytest.mark.slow
def test_mobilenetv2_trains_on_real_slice(real_slice, tmp_path):
    out = tmp_path / "mnv2"
    rc = train_cli.main(["--data", str(real_slice), "--model", "mobilenetv2", "--image-size", "64",
                         "--epochs", "1", "--fine-tune-epochs", "1", "--fine-tune-layers", "10",
                         "--batch-size", "16", "--val-fraction", "0.2", "--out", str(out), "-q"])
    assert rc == 0
    assert evaluate_cli.main(["--run", str(out), "--bootstrap", "20", "--gradcam", "2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_test"] == 24 and m["model"] == "mobilenetv2"
    assert len(list((out / "history.csv").open())) == 3  # header + 2 epochs (head, fine-tune)


def test_cosine_schedule_with_ema_checkpoints_the_weights_it_validated(synthetic_dataset,
                                                                         tmp_path):
    """--schedule cosine decays the LR every epoch with no early stop; with --ema the saved
    model is the averaged one that produced the logged val AUC, not the raw weights."""
    import numpy as np

    from train.config import TrainConfig
    from train.data import list_samples, load_arrays, split_train_val

    out = tmp_path / "cosine"
    assert train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn",
                           "--val-fraction", "0.25", "--out", str(out), *FAST, "--epochs", "4",
                           "--patience", "1", "--schedule", "cosine", "--ema", "--lr", "0.01"]) == 0
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 4  # patience does not stop a cosine run
    lrs = [float(r["learning_rate"]) for r in rows]
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.002
    cfg = TrainConfig.load(out / "config.json")
    assert cfg.schedule == "cosine" and cfg.ema
    _, va = split_train_val(list_samples(cfg.data), cfg.val_fraction, cfg.val_seed)
    x, y, _ = load_arrays(va, cfg.image_size, verbose=False)
    model = keras.models.load_model(out / "model.keras", compile=False)
    p = np.clip(model.predict(x.astype("float32"), verbose=0)[:, 0], 1e-7, 1 - 1e-7)
    loss = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    best = max(rows, key=lambda r: float(r["val_auc"]))
    assert loss == pytest.approx(float(best["val_loss"]), abs=2e-3)


def test_help_does_not_import_tensorflow():
    """--help (and argument errors) answer at once: TensorFlow loads only to train."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from train import train as t\n"
            "try:\n    t.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('heavy:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert "--schedule" in out.stdout and "heavy: []" in out.stdout, out.stderr[-500:]


SPLIT_FAST = ["--epochs", "2", "--batch-size", "16", "--patience", "3", "--val-fraction", "0.25", "-q"]


def test_split_seed_lets_seed_variants_share_validation(synthetic_dataset, tmp_path):
    from train.config import TrainConfig
    from train.data import list_samples, split_train_val

    runs = {}
    for seed in (0, 1):
        runs[seed] = tmp_path / f"m32_seed{seed}"
        rc = train_cli.main(["--data", str(synthetic_dataset), "--model", "seed_cnn", "--image-size",
                             "32", "--seed", str(seed), "--split-seed", "0", "--out",
                             str(runs[seed]), *SPLIT_FAST])
        assert rc == 0
    a = TrainConfig.load(runs[0] / "config.json")
    b = TrainConfig.load(runs[1] / "config.json")
    assert (a.seed, b.seed) == (0, 1) and a.val_seed == b.val_seed == 0
    samples = list_samples(synthetic_dataset, "train")
    assert split_train_val(samples, 0.25, b.val_seed) == split_train_val(samples, 0.25, a.val_seed)
    w_a = keras.models.load_model(runs[0] / "model.keras").get_weights()[1]
    w_b = keras.models.load_model(runs[1] / "model.keras").get_weights()[1]
    assert not np.allclose(w_a, w_b)  # a different initialisation: the seed still counts


def test_a_config_of_the_deleted_teacher_and_ensemble_runs_still_loads(tmp_path):
    """Run folders written before distillation and train/ensemble.py were deleted keep loading."""
    from train.config import TrainConfig

    old = {"model": "ensemble", "image_size": 48, "teacher": "runs/t", "distill_weight": 0.25,
           "teacher_extra": True, "members": ["runs/a", "runs/b"], "seed": 3}
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = TrainConfig.load(tmp_path / "config.json")
    assert (cfg.model, cfg.image_size, cfg.seed) == ("ensemble", 48, 3)
    assert not hasattr(cfg, "teacher") and not hasattr(cfg, "members")
