# repro — `make help` lists the targets. `make train` / `make test` create .venv and install on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# SMOKE=1 runs tables on synthetic fixtures with tiny budgets (seconds, not a reproduction).
SMOKE ?= 0
TABLE_FLAGS := $(if $(filter 1,$(SMOKE)),--smoke,)
export OMP_WAIT_POLICY ?= PASSIVE

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned (ENVIRONMENT.md): a newer torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,audio,text,video]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install repro with dev extras

train: $(STAMP) ## Train the default (MSAF on the embedded AV-Digits set) and print metrics; ARGS="..." for overrides
	$(PY) train.py $(ARGS)

test: $(STAMP) ## Run the fast test suite (what CI runs; lists the 15 slowest tests, to keep it under ~10 min)
	$(PY) -m pytest -q --durations=15 $(ARGS)

test-full: $(STAMP) ## Run every test, the slow ones included
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

tables: $(STAMP) ## Run and render every table (SMOKE=1 for fixtures)
	$(PY) -m repro.tables run all $(TABLE_FLAGS)

table-%: $(STAMP) ## Run + render one table (and the tables it needs), e.g. make table-avdigits-search, make table-mfas-t2 SMOKE=1
	$(PY) -m repro.tables run $* $(TABLE_FLAGS)

tables-list: $(STAMP) ## List the tables
	$(PY) -m repro.tables list

bench: $(STAMP) ## Benchmarks: train-step throughput of every model (AV-Digits, CMU sequence models, MulT/MICA, the MSAF RAVDESS network) and data loading (AV-Digits, RAVDESS) → outputs/bench/*.json
	$(PY) scripts/bench.py $(ARGS)
	$(MAKE) --no-print-directory bench-msaf-ravdess bench-ravdess-data bench-ntu-data bench-ntu ARGS=

# Evidence: the small files behind every number the README quotes live in results/ (tracked; outputs/ is not).
SMOKE_SUFFIX := $(if $(filter 1,$(SMOKE)),-smoke,)
evidence-table-%: $(STAMP) ## Run + render a table and copy its rendered .md/.csv into results/tables/ (to commit)
	$(PY) -m repro.tables run $* $(TABLE_FLAGS)
	mkdir -p results/tables
	cp outputs/tables/$(subst -,_,$*)$(SMOKE_SUFFIX).{md,csv,runs.csv} results/tables/

evidence-bench: $(STAMP) ## Benchmarks written straight into results/bench/ (to commit); ARGS="--suite mult" etc.
	$(PY) scripts/bench.py --out results/bench $(ARGS)

evidence-ci: ## Time .ci/run on a fresh clone of HEAD → results/ci/ci-<commit>.txt (to commit)
	scripts/time_ci.sh

table-avdigits-search: $(STAMP) ## Random search vs MFAS on AV-Digits (3 seeds, CPU) + their best architectures trained
	$(PY) -m repro.tables run avdigits_search_found $(TABLE_FLAGS)

table-mfas-t4: $(STAMP) ## MFAS Table 4 — NTU RGB+D CS accuracy: unimodal rows from ntu_unimodal, fusions, the found architectures (SMOKE=1: fixture)
	$(PY) -m repro.tables run mfas_t4 $(TABLE_FLAGS)

table-mfas-t5: $(STAMP) ## MFAS Table 5 — the MFAS search on NTU: top-4 architectures, validation accuracy and fusion parameters (SMOKE=1: fixture)
	$(PY) -m repro.tables run mfas_t5 $(TABLE_FLAGS)

gpu-wheels: ## Fetch the wheels scripts/gpu_check.sh needs on a lent GPU machine (no registry there) into .whl/
	mkdir -p .whl
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl \
		hydra-core==1.3.2 omegaconf==2.3.0
	# PyAV for PARTS=ntu (its wheel bundles FFmpeg); optional ("-"): its platform tag is not checked here
	-python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 -d .whl av==18.1.0
	python3 -m pip download -q --no-deps --no-binary=:all: -d .whl/src antlr4-python3-runtime==4.9.3
	python3 -m pip wheel -q --no-deps -w .whl .whl/src/antlr4-python3-runtime-4.9.3.tar.gz && rm -r .whl/src

gpu-check: ## On a CUDA machine: GPU tests + MulT/MICA and AV-Digits fusion benches in fp32 and bf16 → $$OUT
	scripts/gpu_check.sh

bench-mfas: $(STAMP) ## MFAS search benchmark (paper budget, 55k/5k/10k AV-Digits) → outputs/bench/mfas_search.json
	$(PY) scripts/bench_mfas.py $(ARGS)

bench-mfas-ntu: $(STAMP) ## MFAS search on NTU: seconds per sampled architecture (L = 1..4) on NTU-sized cached SYNTHETIC features, paper budget projected → results/bench/mfas_ntu.json
	$(PY) scripts/bench_mfas_ntu.py $(ARGS)

bench-ravdess-data: $(STAMP) ## RAVDESS data speed: prepared layout → DataLoader (2 workers, 30×224², train transforms) and mp4 preparation per core → outputs/bench/ravdess_data.json
	$(PY) scripts/bench_ravdess_data.py $(ARGS)

bench-ntu-data: $(STAMP) ## NTU RGB data speed: prepared 256² avi → DataLoader (2 workers, 32×224², train transforms) vs a uint8 frame store, and the 1080p → 256² preparation per core → outputs/bench/ntu_data.json
	$(PY) scripts/bench_ntu_data.py $(ARGS)

bench-ntu: $(STAMP) ## NTU networks vs the authors' structures: train step of HCN (batch 64), I3D (2 × 32×224²), inflated ResNet-50 (2 × 8×224²), fp32 / channels-last, one process each, ratio ours/authors → outputs/bench/ntu_models_cpu.json
	$(PY) scripts/bench_ntu.py $(ARGS)

bench-ntu-skeleton: $(STAMP) ## NTU skeleton cache build at release size: 56,880 SYNTHETIC .skeleton files (~13.5 GB in /tmp, deleted after), 1 vs 2 parse workers → outputs/bench/ntu_skeleton_parse.json
	$(PY) scripts/bench_ntu_skeleton.py $(ARGS)

bench-memory: $(STAMP) ## Peak RSS of image-only / fusion training and the search on a 60k AV-MNIST-format SYNTHETIC fixture (~3.5 GB in /tmp, deleted after) → outputs/bench/memory.json
	$(PY) scripts/bench_memory.py $(ARGS)

.PHONY: bench-mesm
bench-mesm: $(STAMP) ## MESM vs FE2E on CPU (2 threads): train steps at batch 8 (IEMOCAP shapes), sparse vs dense blocks at p 0.1-0.9, where the sparse time goes, eval forward vs the dense reference (Tables 3/4's wall time) → results/bench/mesm_cpu.json (ARGS="--device cuda [--bf16]" on a GPU)
	$(PY) scripts/bench_mesm.py --out results/bench $(ARGS)

.PHONY: bench-msaf-ravdess
bench-msaf-ravdess: $(STAMP) ## MSAF RAVDESS train step, batch 2 × 30×224², CPU: fp32 / channels-last / checkpointed activations, one process each → outputs/bench/msaf_ravdess_cpu.json
	$(PY) scripts/bench_video.py --device cpu --net msaf --isolate --steps 3 --warmup 1 \
		--variants fp32,fp32_channels_last,fp32_ckpt,fp32_channels_last_ckpt --out outputs/bench/msaf_ravdess_cpu.json $(ARGS)

search: $(STAMP) ## MFAS architecture search; ARGS="data=avdigits search=random ..." (see README "MFAS")
	$(PY) search.py $(ARGS)

figure-mfas-search: $(STAMP) ## MFAS Fig. 5 (error per step, temperature) of a search → outputs/figures/mfas_search.png
	$(PY) -m repro.analysis.search_plots $(or $(SEARCH),outputs/tables/avdigits_search/runs/mfas/seed_0 outputs/tables/avdigits_search/runs/random-search/seed_0)

figure-rmfn-attention: $(STAMP) ## RMFN Fig. 3 (HIGHLIGHT attention per stage × word) of an RMFN run → outputs/figures/rmfn_attention.png
	$(PY) -m repro.analysis.rmfn_attention $(or $(RUN),outputs/tables/rmfn_t1$(if $(filter 1,$(SMOKE)),-smoke,)/runs/rmfn/seed_0) \
		--out outputs/figures/rmfn_attention$(if $(filter 1,$(SMOKE)),-smoke,).png

figure-mica-sensitivity: $(STAMP) ## MICA Fig. 3 (α, β, τ sweeps on MOSEI; trains table mica_fig3) → outputs/figures/mica_sensitivity.png
	$(PY) -m repro.tables run mica_fig3 $(TABLE_FLAGS)
	$(PY) -m repro.analysis.mica_sensitivity $(TABLE_FLAGS)

figure-mica-attention: $(STAMP) ## MICA Fig. 4 (text ← vision attention, last layer) of a MICA run → outputs/figures/mica_attention.png
	$(PY) -m repro.analysis.attention_alignment $(or $(RUN),outputs/tables/mica_t2$(if $(filter 1,$(SMOKE)),-smoke,)/runs/mica/seed_0) \
		--figure outputs/figures/mica_attention$(if $(filter 1,$(SMOKE)),-smoke,).png $(ARGS)

figure-msaf-params: $(STAMP) ## MSAF Fig. 5 (params and FLOPs of MSAF vs MMTM) → outputs/figures/msaf_params.png
	$(PY) scripts/figure_msaf_params.py

table-msaf-t1: $(STAMP) ## MSAF Table 1 (RAVDESS: 9 rows × 6 folds × both protocols; unimodal pre-training first), SMOKE=1 ok
	$(PY) -m repro.tables run msaf_t1 $(TABLE_FLAGS)

table-msaf-t4-ravdess: $(STAMP) ## MSAF Table 4's six RAVDESS rows (C, lambda, BlockDropout; 6 folds), SMOKE=1 ok
	$(PY) -m repro.tables run msaf_t4_ravdess $(TABLE_FLAGS)

# NTU RGB+D (issue 15): the unimodal runs (table ntu_unimodal) are trained first by each table that needs them.
table-ntu-unimodal: $(STAMP) ## NTU unimodal networks (I3D, inflated ResNet-50, HCN; 5 seeds) the NTU fusion rows start from, SMOKE=1 ok
	$(PY) -m repro.tables run ntu_unimodal $(TABLE_FLAGS)

table-msaf-t3: $(STAMP) ## MSAF Table 3 (NTU RGB+D CS: unimodal, CentralNet, MFAS (runs mfas_t5 first), MMTM, MSAF rows; 5 seeds), SMOKE=1 ok
	$(PY) -m repro.tables run msaf_t3 $(TABLE_FLAGS)

table-msaf-t4-ntu: $(STAMP) ## MSAF Table 4's six NTU rows (C, lambda, BlockDropout on I3D + HCN), SMOKE=1 ok
	$(PY) -m repro.tables run msaf_t4_ntu $(TABLE_FLAGS)

table-msaf-t5: $(STAMP) ## MSAF Table 5 (MSAF placement E/I/L and combinations on I3D + HCN), SMOKE=1 ok
	$(PY) -m repro.tables run msaf_t5 $(TABLE_FLAGS)

# Without RUN=: trains Table 1's MSAF row first (and the unimodal runs it starts from), then pools the test folds
# of the paper's protocol that exist (SMOKE=1: fold 0 of the fixture).
figure-msaf-attention: $(STAMP) ## MSAF Fig. 6/7 (attention per emotion and per block) of MSAF runs → outputs/figures/msaf_attention*
	$(if $(RUN),,$(PY) -m repro.tables run msaf_t1 --rows msaf $(TABLE_FLAGS))
	$(PY) -m repro.analysis.msaf_attention $(or $(RUN),outputs/tables/msaf_t1$(SMOKE_SUFFIX)/runs/msaf/fold_*_select_on_test) \
		--out outputs/figures/msaf_attention$(SMOKE_SUFFIX) $(ARGS)

table-mesm-t3: $(STAMP) ## MESM Table 3 (IEMOCAP raw: LF-LSTM, LF-TRANS, MulT on HCF; FE2E, MESM p=0.7; GFLOPs), SMOKE=1 ok
	$(PY) -m repro.tables run mesm_t3 $(TABLE_FLAGS)

table-mesm-t4: $(STAMP) ## MESM Table 4 (CMU-MOSEI raw: the same rows, WAcc / F1; MESM p=0.5), SMOKE=1 ok
	$(PY) -m repro.tables run mesm_t4 $(TABLE_FLAGS)

table-mesm-t5: $(STAMP) ## MESM Table 5 (modality ablation T/A/V on IEMOCAP for FE2E and MESM), SMOKE=1 ok
	$(PY) -m repro.tables run mesm_t5 $(TABLE_FLAGS)

figure-mesm-topp: $(STAMP) ## MESM Fig. 5 (WAcc and GFLOPs vs top-p 0.1..0.9, FE2E reference; trains mesm_fig5) → outputs/figures/mesm_topp.png
	$(PY) -m repro.tables run mesm_fig5 $(TABLE_FLAGS)
	$(PY) -m repro.analysis.mesm_topp $(TABLE_FLAGS)

# Without RUN=: trains Table 3's MESM row first (SMOKE=1: on the fixture).
figure-mesm-attention: $(STAMP) ## MESM Fig. 3/4/6 (sites kept per sparse block over faces and spectrogram chunks, per emotion) of a MESM run → outputs/figures/mesm_attention*
	$(if $(RUN),,$(PY) -m repro.tables run mesm_t3 --rows "MESM (p=0.7)" $(TABLE_FLAGS))
	$(PY) -m repro.analysis.mesm_attention $(or $(RUN),outputs/tables/mesm_t3$(SMOKE_SUFFIX)/runs/mesm-p-0-7/seed_0) \
		--out outputs/figures/mesm_attention$(SMOKE_SUFFIX) $(ARGS)

avdigits: $(STAMP) ## Rebuild the embedded AV-Digits set (needs apt + pip registries)
	$(PY) scripts/make_avdigits.py

avdigits-full: $(STAMP) ## Build AV-Digits at AV-MNIST size (55k/5k/10k) into data/avdigits_full (for bench-mfas)
	$(PY) scripts/make_avdigits.py --sizes 55000,5000,10000 --out $(or $(REPRO_DATA_DIR),data)/avdigits_full

clean: ## Remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache lightning_logs
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

.PHONY: help install train test test-full lint tables tables-list table-avdigits-search bench bench-mfas bench-mfas-ntu table-mfas-t4 table-mfas-t5 bench-ravdess-data bench-ntu-data bench-ntu bench-ntu-skeleton bench-memory search \
	evidence-bench evidence-ci gpu-wheels gpu-check \
	figure-mfas-search figure-rmfn-attention figure-mica-sensitivity figure-mica-attention figure-msaf-params avdigits avdigits-full clean \
	table-msaf-t1 table-msaf-t4-ravdess figure-msaf-attention \
	table-ntu-unimodal table-msaf-t3 table-msaf-t4-ntu table-msaf-t5 \
	table-mesm-t3 table-mesm-t4 table-mesm-t5 figure-mesm-topp figure-mesm-attention
