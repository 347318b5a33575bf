# Two commands for a newcomer (see README):  make book   |   make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: venv data test notebooks book bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

data: venv  ## fetch the embedded data and weights into data/cache (mirror or download), verified
	$(PY) -m gradcam_core.data fetch

test: data  ## the whole test suite
	$(PY) -m pytest

notebooks: data  ## execute every task notebook in place with papermill (embedded default)
	@for nb in $(NOTEBOOKS); do echo "papermill $$nb"; \
	  $(VENV)/bin/papermill --cwd notebooks $$nb $$nb || exit 1; done

book: notebooks  ## render the executed notebooks and chapters into _build/html
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

bench: data  ## Grad-CAM cost benchmark (plain forward vs ours vs pytorch-grad-cam vs captum)
	$(PY) benchmarks/bench_gradcam.py

clean:
	rm -rf _build
