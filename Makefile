# Both targets bootstrap .venv on first use; later runs reuse it (the stamp tracks setup.cfg).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= cpu,test

.PHONY: demo test check setup clean

demo: $(STAMP)
	$(BIN)/fakeface demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The fast tier for your own loop: everything but the `slow` tests (MTCNN, TensorFlow, whole runs).
check: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs data/demo
