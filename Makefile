# The two commands a user needs: `make serve` and `make test`. Each creates .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use: a synth library, a small General MIDI SoundFont, and
# Chromium for the web page's browser tests (Playwright drives it; it never downloads one),
# Cairo for rendered score pages (PDF, PNG), and MuseScore 3 (GPL, a test tool only: run headless
# to check that our MusicXML imports; nothing of midiscribe links or calls it).
SYSTEM_PACKAGES := libfluidsynth3 timgm6mb-soundfont chromium libcairo2 musescore3

.PHONY: setup serve test lint bench system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The model weights ship in the basic-pitch 0.4.0 wheel; its declared dependencies
# would pull TensorFlow and pin numpy < 2, so it is installed without them.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,fast]'
	$(BIN)/pip install --quiet --no-deps 'basic-pitch==0.4.0'
	touch $(STAMP)

setup: $(STAMP)

system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	      || echo "warning: could not install $$missing; the tests that need them will say so"; \
	  fi; \
	fi

serve: setup
	$(BIN)/midiscribe serve

test: setup system-packages
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/speed.py

clean:
	rm -rf $(VENV) build *.egg-info
