# Two entry points (see README): `make all` runs the whole job, `make test` runs the tests.
# Both create ./.venv with Python 3.11 and install what they need; nothing else is required.
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
RUN     ?= runs/demo
DATA    ?=
DATA_FLAG := $(if $(DATA),--data $(DATA),)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: all next setup test web-deps train evaluate export classify bench train-shipped shipped golden clean

all: train evaluate export classify bench next  ## the whole job on the default dataset

next:  ## what to run after `make all`
	@echo ""
	@echo "make all: done. Demo run in $(RUN) (a quick model, not the shipped one). Next:"
	@echo "  $(BIN)/python edge/classify.py your_lesion.jpg        # the shipped model in models/"
	@echo "  $(BIN)/python edge/classify.py --model $(RUN)/export/model_int8.tflite --camera   # the demo model, live"
	@echo "  less $(RUN)/report.md $(RUN)/export/export_report.md $(RUN)/bench/report.md"
	@echo "  make test                                             # the test suite"
	@echo "  docs/cli.md: every option; docs/experiments.md: how the shipped model was chosen"

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[train,export,edge,bench,dev]"
	touch $@

setup: $(STAMP)

test: $(STAMP) web-deps
	$(BIN)/python -m pytest -q

# The browser tests' prerequisites (tests/test_web*.py): Debian's chromium, installed when
# missing and running as root, and the runtime the web app vendors (npm ci in web/).
web-deps: web/node_modules/.installed
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

web/node_modules/.installed: web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	touch $@

# The demo model: the plain CNN at 128 px for 10 epochs. Unlike a
# short MobileNetV2 run (98.10-98.42% int8 label agreement, under the 99% tolerance), it
# quantizes cleanly, so every exported format passes parity (docs/experiments.md).
train: $(STAMP)
	test -f $(RUN)/model.keras || $(BIN)/python train/train.py $(DATA_FLAG) --model seed_cnn --image-size 128 \
		--epochs 10 --out $(RUN) -q

evaluate: $(STAMP)
	$(BIN)/python train/evaluate.py --run $(RUN) $(DATA_FLAG)

# Every format must pass parity (exit 0); exit 1 names the format outside its tolerance.
export: $(STAMP)
	$(BIN)/python export/convert.py --run $(RUN) --out $(RUN)/export $(DATA_FLAG)

classify: $(STAMP)
	$(BIN)/python edge/classify.py --model $(RUN)/export/model_int8.tflite --limit 8 \
		"$$($(BIN)/python -c 'import sys; from train.data import resolve_data_dir as r; print(r(sys.argv[1] or None))' '$(DATA)')/test"

bench: $(STAMP)
	$(BIN)/python benchmarks/latency.py --artifacts $(RUN)/export --out $(RUN)/bench

# The shipped default model (models/, MODEL_CARD.md): ONE network, MobileNetV2-1.0 at 160 px with a
# lesion-type head (P(malignant) = the summed malignant types) and a modality head (dermoscopic
# or phone photo, one threshold each), trained on three sources (skin-lesions, ham10000-extra,
# pad-ufes-phone; every (source, label) group weighs the same): the head on the images
# themselves, then the top blocks on cached activations of six acquisition-augmented views, the
# epoch chosen by the worst source's validation AUC (docs/experiments.md, "One network for
# every source"; 4 min 21 s with the activations cached; caching them took 4 min 44 s).
# `make train-shipped` trains it; `make shipped` re-derives every number (export with 1,000 calibration images and the guard
# fitted on every source's training images, benchmark, per-source evaluation, model card with
# a leave-one-acquisition-group-out check) and ends by comparing the re-shipped model with the
# recorded golden predictions: a re-ship that changes them fails here. Only when that change
# is intended, re-record them in a separate step: `make golden`.
# SOURCES="skin-lesions-dir ham10000-dir phone-dir" overrides the sources (default: DATA, or the
# skin-lesions folder, and ham10000-extra and pad-ufes-phone beside it).
SHIP_RUN ?= runs/allsrc-160
SHIP_TRAIN_FLAGS := --image-size 160 --augment acquisition --views 6 --head-views 1 --top-epochs 10
# Parity: the int8 files rank the test images as the float model does (int8 TFLite ROC AUC 0.9193
# against the float 0.9188), but at the float model's thresholds (dermoscopic 0.1210), where many
# benign images sit, 17 of 633 test labels flip (97.31% agreement): the recipe's recorded
# tolerance is 97% (docs/experiments.md, "One network for every source"); each file applies its
# own thresholds, chosen on its own validation outputs.
SHIP_EXPORT_FLAGS := --formats tflite_int8,onnx_int8 --calibration-count 1000 \
	--tolerance all.min_agreement=0.97
SOURCES ?=
SOURCES_FLAG := $(if $(SOURCES),--data $(SOURCES),$(DATA_FLAG))

$(SHIP_RUN)/model.keras: | $(STAMP)
	$(BIN)/python research/train_typed.py $(SOURCES_FLAG) $(SHIP_TRAIN_FLAGS) --out $(@D)

# The model card's stand-in for another clinic: the head trained again without one HAM10000
# acquisition group at a time (leave-one-group-out; the first, un-augmented view).
SHIP_LOSO := runs/loso-allsrc-160/loso.json
$(SHIP_LOSO): | $(STAMP)
	$(BIN)/python research/train_typed.py $(SOURCES_FLAG) $(SHIP_TRAIN_FLAGS) --views 1 --loso-only \
		--out $(@D)

train-shipped: $(SHIP_RUN)/model.keras

shipped: train-shipped $(SHIP_LOSO)
	$(BIN)/python export/convert.py --run $(SHIP_RUN) --out models $(SHIP_EXPORT_FLAGS) $(DATA_FLAG)
	$(BIN)/python benchmarks/latency.py --artifacts models --out $(SHIP_RUN)/bench-models --compare none
	$(BIN)/python research/describe.py --run $(SHIP_RUN) --models models $(DATA_FLAG) --loso \
		"lesion-type head (1 view, head only)=$(SHIP_LOSO)"
	$(BIN)/python export/card.py --run $(SHIP_RUN) --models models \
		--bench $(SHIP_RUN)/bench-models/report.json $(DATA_FLAG)
	$(BIN)/python -m pytest -q tests/test_shipped_model.py

golden: $(STAMP)  ## re-record tests/golden/shipped_predictions.json (after an intended re-ship)
	$(BIN)/python -m tests.golden_shipped --write

clean:
	rm -rf $(VENV) .pytest_cache
