# The two commands of the README: `make demo` (main job) and `make test` (the tests).
# Both bootstrap .venv on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-unit test-regression test-docker docker-images system-deps bench clean

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

demo: $(STAMP)
	@bash scripts/demo.sh

test: test-unit test-regression test-docker

test-unit: $(STAMP) system-deps docker-images
	env $(DOCKER_ENV) SESSIONSTORM_REQUIRE_DOCKER=$(REQUIRE_DOCKER) $(BIN)/pytest tests -n auto

test-regression: $(STAMP)
	$(BIN)/pytest regression -n auto

# The same regression suite with PostgreSQL, Redis, the provider and the targets in containers.
test-docker: $(STAMP) docker-images
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

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
