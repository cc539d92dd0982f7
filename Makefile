# Two commands for a newcomer: `make run` (the default experiment, end to end) and `make test`.
# Both set up .venv first when it is missing or out of date.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
TORCH  := torch==2.13.0

.PHONY: setup run test test-fast lint ui clean setup-petastorm test-petastorm

setup: $(STAMP)

$(STAMP): requirements.txt requirements-sigopt-lite.txt pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)          # first and alone: the CPU build (a range pulls CUDA)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-sigopt-lite.txt  # after: they pin an old numpy
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The optional petastorm profile (connector=petastorm), in its own venv: petastorm needs pyarrow < 15, numpy < 2.
PETASTORM := .venv-petastorm
$(PETASTORM)/.setup-done: requirements-petastorm.txt pyproject.toml
	python3 -m venv $(PETASTORM)
	$(PETASTORM)/bin/pip install --quiet $(TORCH)
	$(PETASTORM)/bin/pip install --quiet -r requirements-petastorm.txt
	$(PETASTORM)/bin/pip install --quiet --no-deps petastorm==0.12.1 -e .  # petastorm lists pyspark; unused
	touch $@

setup-petastorm: $(PETASTORM)/.setup-done

test-petastorm: setup setup-petastorm
	$(PETASTORM)/bin/pytest tests/test_connector_petastorm.py $(PYTEST_ARGS)

run: setup
	$(BIN)/bluewhale $(ARGS)

test: setup
	@command -v slurmctld >/dev/null || bash .ci/slurm-setup.sh  # Slurm for tests/test_slurm.py
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

ui: setup  # the links it prints open each experiment on its training runs (MLflow 3 starts on GenAI)
	@$(BIN)/python -P bluewhale/tracking/ui.py sqlite:///$(CURDIR)/mlflow.db http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf outputs multirun data mlruns mlflow.db
