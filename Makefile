# Two commands for a newcomer (see README):  make book   |   make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-12)
# task notebooks first: the book's own notebooks (results, provenance) read their results files
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb)) book/results_vs_paper.ipynb book/provenance.ipynb book/intro.ipynb
# where `make publish` pushes the gh-pages branch: a remote's name or a repository's path or URL
PUBLISH_REMOTE ?= origin

.PHONY: venv data lint format test notebooks full-runs book html publish results-present bench clean help

# the pinned requirements, then gradcam_core itself, editable (pyproject.toml; its dependencies are requirements.txt)
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

data: venv  ## fetch the embedded data and weights into data/cache (mirror or download), verified
	$(PY) -m gradcam_core.data fetch

lint: venv  ## ruff: lint rules and formatting (pyproject.toml), package, tests, benchmarks and notebooks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint data  ## the linter, unit tests, the browser check of the book, then nbval re-executing every notebook
	$(PY) -m pytest

notebooks: data  ## execute every task notebook in place with papermill (embedded default)
	@for nb in $(NOTEBOOKS); do echo "papermill $$nb"; \
	  $(VENV)/bin/papermill --cwd $$(dirname $$nb) $$nb $$nb || exit 1; done

# the published full-count run of chapter 08 (data/runs/08_beyond_the_paper), which the page shows and
# checks its own default-count recomputation against; about 50 minutes on 2 CPU cores
FULL_RUN_08 := -p sanity_images 100 -p deletion_images 200 -p deletion_score_cam_images 200 -p score_cam_images 20
#: re-make only these parts of the published run, carrying the others over (comma-separated),
#: e.g. `make full-runs PARTS_08=deletion_score_cam`; empty: the whole run
PARTS_08 :=
REMAKE_08 = -y "published_run: ../data/runs/08_beyond_the_paper" -y "remake_parts: [$(PARTS_08)]"

full-runs: data  ## re-make the published full-count runs that pages show (data/runs/), then re-execute those pages
	rm -rf data/runs/08_beyond_the_paper.new
	$(VENV)/bin/papermill --cwd notebooks notebooks/08_beyond_the_paper.ipynb /dev/null $(FULL_RUN_08) \
	  $(if $(PARTS_08),$(REMAKE_08),-y "published_run: null") \
	  -p output_dir ../data/runs/08_beyond_the_paper.new
	$(PY) -c "from gradcam_core import results; results.prune_published_run('data/runs/08_beyond_the_paper.new')"
	rm -rf data/runs/08_beyond_the_paper && mv data/runs/08_beyond_the_paper.new data/runs/08_beyond_the_paper
	$(VENV)/bin/papermill --cwd notebooks notebooks/08_beyond_the_paper.ipynb notebooks/08_beyond_the_paper.ipynb

book: notebooks html  ## execute the notebooks, then render the book

html: venv  ## render the committed (executed) notebooks and chapters into _build/html, warnings as errors
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

publish: results-present html  ## render, then push _build/html to the gh-pages branch of PUBLISH_REMOTE (ghp-import, .nojekyll)
	$(VENV)/bin/ghp-import -n -p -f -r $(PUBLISH_REMOTE) \
	  -m "The book, built from commit $$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" _build/html

results-present:  # the pages link their results CSVs, which the build copies from results/
	@test -d results || { echo "make publish: no results/ folder, so the pages' CSV links would be dead; run the notebooks first (make book)" >&2; exit 2; }

bench: data  ## benchmarks: every explainer vs its peer and floor, Task 1 end to end; Grad-CAM top-5 cost
	$(PY) benchmarks/bench_explainers.py
	$(PY) benchmarks/bench_gradcam.py

clean:
	rm -rf _build

help:  ## this list of targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | expand -t 12
