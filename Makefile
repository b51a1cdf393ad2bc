# One entry point for people, hooks and CI. `make help` lists the targets.
.DEFAULT_GOAL := help
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install tools and build imagespec into .venv (idempotent)
	@bash scripts/setup.sh

.PHONY: example
example: setup ## the main job: build, push, run and inspect the example images (scripts/example.sh)
	bash scripts/example.sh

.PHONY: lint
lint: setup ## formatting, lints and type checks (Rust and Python)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --no-default-features --all-targets -- -D warnings
	$(VENV)/ruff check python tests bench examples
	$(VENV)/ruff format --check python tests bench examples
	$(VENV)/mypy
	$(VENV)/python -m mypy.stubtest imagespec._core
	$(VENV)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

.PHONY: test-rust
test-rust: ## the core's own tests (no Python needed)
	cargo test --no-default-features

# ENGINES=0 leaves the real engines alone and the engine tests out.
ENGINES ?= 1

.PHONY: test-python
test-python: setup ## the Python test suite (starts dockerd for it and stops it after; ENGINES=0: without)
ifeq ($(ENGINES),0)
	$(VENV)/python -m pytest -m "not engines" $(PYTEST_ARGS)
else
	bash scripts/with-engines.sh $(VENV)/python -m pytest $(PYTEST_ARGS)
endif

.PHONY: engines
engines: ## install and start the real engines, make the test base image (scripts/engines.sh)
	bash scripts/engines.sh start
	bash scripts/base-image.sh build

.PHONY: dist
dist: setup ## the abi3 manylinux wheel and the sdist a release publishes, into dist/ (scripts/dist.sh)
	bash scripts/dist.sh

.PHONY: test
# dist before test-python: tests/dist installs those files into every Python 3.9-3.13 here.
test: setup lint test-rust dist test-python ## everything CI runs

.PHONY: bench
bench: setup ## tag benchmark, side by side with flytekit (see bench/README.md)
	$(VENV)/python bench/bench_tag.py

.PHONY: bench-exists
bench-exists: setup ## existence benchmark, side by side with flytekit, skopeo and the floor
	$(VENV)/python bench/bench_exists.py

.PHONY: bench-build
bench-build: setup ## `imagespec build` vs `pyflyte build --fast` when every image exists (COLD=1: engine builds too)
	$(VENV)/python bench/bench_build.py $(if $(filter 1,$(COLD)),--cold)
