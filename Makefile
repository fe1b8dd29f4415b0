# neuroseg: the pipeline. `make reproduce` regenerates reports/ from the data;
# `make test` runs the test suite and every notebook on the quick profile.
# Each notebook is one step; its prerequisites are the notebook, its parameters for the
# profile and the steps it names in its metadata (neuroseg.needs), so a finished step is
# skipped and a changed one re-runs with everything downstream.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SECONDARY:
.DEFAULT_GOAL := help

PROFILE ?= full
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PACKAGE_SOURCES := $(shell find neuroseg -name "*.py")

# The real datasets: NEUROSEG_DATA if set, else ../shared/data when it exists.
NEUROSEG_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export NEUROSEG_DATA
export NEUROSEG_PROFILE := $(PROFILE)
export PYTHONHASHSEED := 0

ART := $(or $(NEUROSEG_ARTIFACTS),artifacts)/$(PROFILE)
RUN := $(ART)/runs
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
STEPS := $(basename $(notdir $(NOTEBOOKS)))
EXECUTED := $(STEPS:%=$(RUN)/%.ipynb)
DIGESTS := $(STEPS:%=$(RUN)/%.digest)

.PHONY: help install reproduce test unit lab data lint clean verify seeds blockwise-study notebooks-by-hand export-models front-precision front-seeds axon-seeds FORCE $(STEPS)

help:  ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

# ------------------------------------------------------------------ environment
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(STAMP)  ## create .venv (if missing) and install the pinned environment

# ------------------------------------------------------------------ pipeline
# Dependencies between steps come from the notebooks' metadata (see neuroseg/pipeline.py).
$(shell mkdir -p $(ART) && $(PYTHON) neuroseg/pipeline.py deps --profile $(PROFILE) --out $(ART)/deps.mk)
include $(ART)/deps.mk

$(ART)/params/%.yml: notebooks/params/$(PROFILE).yml $(STAMP)
	$(PY) -m neuroseg.pipeline params $* --profile $(PROFILE)

$(RUN)/%.ipynb: notebooks/%.ipynb $(ART)/params/%.yml $(PACKAGE_SOURCES) $(STAMP)
	$(PY) -m neuroseg.pipeline run $* --profile $(PROFILE)

# A later step depends on this digest of the step's outputs, which changes only when their
# contents do: a step re-run that writes the same bytes does not re-run what follows it.
$(RUN)/%.digest: $(RUN)/%.ipynb
	$(PY) -m neuroseg.pipeline digest $* --profile $(PROFILE)

$(STEPS): %: $(RUN)/%.ipynb  ## (any step name, e.g. `make 10_nucleus_pretraining`)

reproduce: $(DIGESTS)  ## run every notebook in order (PROFILE=full|quick) and regenerate reports/
	@echo "reports written to $$($(PY) -c 'from neuroseg import paths; print(paths.reports_dir())')"

# ------------------------------------------------------------------ tests
unit: $(STAMP)  ## unit and integration tests only (pytest)
	$(PY) -m pytest

test: $(STAMP)  ## every notebook on the quick profile, then the whole test suite
	$(MAKE) --no-print-directory reproduce PROFILE=quick
	$(PY) -m pytest

lint: $(STAMP)  ## ruff over the package, tests and notebooks
	$(PY) -m ruff check neuroseg tests notebooks benchmarks

# ------------------------------------------------------------------ verify
STEP ?=
verify: $(STAMP)  ## re-run STEP=NN_name from scratch in a temporary folder; compare its metrics (RECORD=1 writes reproducibility.csv)
	@test -n "$(STEP)" || { echo "usage: make verify STEP=10_nucleus_pretraining [PROFILE=full] [RECORD=1]"; exit 2; }
	$(PY) -m neuroseg.report.verify $(STEP) --profile $(PROFILE) $(if $(RECORD),--record)

SEEDS ?= 1 2
seeds: $(STAMP)  ## train STEP=NN_name with SEEDS (default 1 2) from nothing; spread of each metric to seeds.csv
	@test -n "$(STEP)" || { echo "usage: make seeds STEP=10_nucleus_pretraining [SEEDS='1 2']"; exit 2; }
	$(PY) -m neuroseg.report.verify $(STEP) --profile $(PROFILE) --seeds $(SEEDS)

# Whether bf16 inference lowers the front's validation scores (#24); a few minutes.
front-precision: $(RUN)/45_front_2d_vs_3d.digest | $(STAMP)  ## bf16 against fp32 inference of the front's best settings on validation
	$(PY) benchmarks/front_precision.py --profile $(PROFILE)

# The front's winners trained again with other seeds (#24, #29): their test scores' spread,
# reports/metrics/45_front_2d_vs_3d_seeds.csv; outside `make reproduce`, about 25 min a seed.
front-seeds: $(RUN)/45_front_2d_vs_3d.digest | $(STAMP)  ## the front's winners with SEEDS (default 1 2): spread of their test scores
	$(PY) benchmarks/front_seeds.py --profile $(PROFILE) --seeds $(SEEDS)

# 50's reported axon/myelin model (SEM) trained again with other seeds (#29): the spread of its
# test numbers, reports/metrics/50_axon_myelin_seeds.csv; outside `make reproduce`, about 20 min a seed.
axon-seeds: $(RUN)/50_axon_myelin.digest | $(STAMP)  ## 50's reported SEM model with SEEDS (default 1 2): spread of its test numbers
	$(PY) benchmarks/axon_seeds.py --profile $(PROFILE) --seeds $(SEEDS)

# ------------------------------------------------------------------ shipped models
# The trained models of PROFILE (nucleus from 10, soma from 20, axon SEM and TEM from 50, the
# fair fight's EM winners from 45) become the package's shipped models, scored on their
# validation data (axon models: test data, where refitted on validation) in half precision; writes
# neuroseg/models/ and reports/metrics/shipped_models.csv.
export-models: $(RUN)/10_nucleus_pretraining.digest $(RUN)/20_neuron_finetuning.digest $(RUN)/45_front_2d_vs_3d.digest $(RUN)/50_axon_myelin.digest  ## copy the trained models into the package (neuroseg/models) with their validation scores
	$(PY) -m neuroseg.report.export_models --profile $(PROFILE)

# Every notebook opened by hand (#28): nbclient on the installed kernel, profile = None (so the
# quick profile), artifacts and reports in a fresh temporary folder; about twice the quick chain.
notebooks-by-hand: reports/metrics/notebooks_by_hand.csv  ## run every notebook as JupyterLab does, unchanged; reports/metrics/notebooks_by_hand.csv

reports/metrics/notebooks_by_hand.csv: benchmarks/notebooks_by_hand.py $(wildcard notebooks/*.ipynb) notebooks/params/quick.yml $(PACKAGE_SOURCES) | $(STAMP)
	$(PY) benchmarks/notebooks_by_hand.py

# ------------------------------------------------------------------ other
lab: $(STAMP)  ## open the notebooks in JupyterLab
	$(VENV)/bin/jupyter lab notebooks

data: $(STAMP)  ## check NEUROSEG_DATA; download and convert missing datasets (needs internet)
	$(PY) -m neuroseg.data --download

# Blockwise segmentation (#26): consistency with the whole volume, throughput over workers
# and volume size up to a gigavoxel, memory per worker, and the cost of 1 mm^3; the shipped
# models in bf16, outside `make reproduce` (about an hour on 2 cores; BLOCKWISE_ARGS=--no-gigavoxel
# leaves out the gigavoxel run, about 40 minutes of it).
BLOCKWISE_MODELS := $(foreach m,em_2d em_linker em_3d_40nm,neuroseg/models/$(m)/weights.pt)
blockwise-study: reports/metrics/blockwise_scaling.csv  ## blockwise study: reports/blockwise.md, reports/metrics/blockwise_* (about an hour)

reports/metrics/blockwise_scaling.csv: benchmarks/blockwise_study.py $(PACKAGE_SOURCES) $(BLOCKWISE_MODELS) | $(STAMP)
	$(PY) benchmarks/blockwise_study.py $(BLOCKWISE_ARGS)

clean:  ## remove the artifacts and quick reports (keeps .venv and the committed reports/)
	rm -rf artifacts reports/quick

FORCE:
