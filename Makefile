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

.PHONY: all setup test train evaluate export classify bench ship clean

all: train evaluate export classify bench  ## the whole job on the default dataset

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[train,export,edge,bench,dev]"
	touch $@

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ~15 min on a 2-core CPU: MobileNetV2-0.35 at 128 px, head then fine-tune.
train: $(STAMP)
	$(BIN)/python train/train.py $(DATA_FLAG) --model mobilenetv2 --alpha 0.35 --image-size 128 \
		--epochs 6 --fine-tune-epochs 6 --out $(RUN)

evaluate: $(STAMP)
	$(BIN)/python train/evaluate.py --run $(RUN) $(DATA_FLAG)

export: $(STAMP)
	$(BIN)/python export/convert.py --model $(RUN)/model.keras --out $(RUN)/export $(DATA_FLAG)

classify: $(STAMP)
	$(BIN)/python edge/classify.py --model $(RUN)/export/model_int8.tflite --limit 8 \
		$(if $(DATA),$(DATA),../shared/datasets/skin-lesions)/test

bench: $(STAMP)
	$(BIN)/python benchmarks/latency.py --artifacts $(RUN)/export --out $(RUN)/bench

clean:
	rm -rf $(VENV) .pytest_cache
