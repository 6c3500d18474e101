# RS-SAGE developer commands. Every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

APT_PACKAGES := qgis python3-qgis python3-venv proj-bin xvfb xauth imagemagick strace
VENV := .venv
PY := $(VENV)/bin/python
SITE := $(CURDIR)/$(VENV)/lib/python3.11/site-packages
STAMP := $(VENV)/.rs_sage_setup
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PLUGIN_LINKS := $(CURDIR)/build/plugins
QGIS_ENV := QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 PROJ_DATA=/usr/share/proj \
	QGIS_PLUGINPATH=$(PLUGIN_LINKS) PYTHONPATH=$(SITE):/usr/share/qgis/python/plugins
DISPLAY_NUM ?= :99

.PHONY: help setup test lint demo run screenshot screenshot-landsat screenshot-questions screenshot-similar desktop-install package repo eval bench kb train export clean

help:
	@echo "make setup     install apt packages and the pinned .venv (idempotent)"
	@echo "make test      run the whole test suite against real QGIS, offscreen"
	@echo "make demo      the headless main job"
	@echo "make run       desktop QGIS with the plugin enabled, in a clean profile (needs a display)"
	@echo "make screenshot desktop QGIS under Xvfb, screenshot to out/screenshot.png"
	@echo "make screenshot-questions / screenshot-similar  desktop QGIS under Xvfb on the sample and the Landsat clip"
	@echo "make package   out/rs_sage.zip (plugin, <= 20 MB) and out/rs_sage-models-VERSION.zip (model pack)"
	@echo "make repo      out/repo/plugins.xml + ZIP: a QGIS plugin repository (REPO_URL=where it is served)"
	@echo "make lint      ruff"
	@echo "make eval      slow model-quality evaluation (needs ../shared/data)"

# The stamp depends on the pinned lists, so editing them re-runs pip and nothing else does.
setup: $(STAMP) $(PLUGIN_LINKS)/rs_sage

$(STAMP): requirements.txt constraints.txt
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
		echo "Installing apt packages: $(APT_PACKAGES)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; }
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -r requirements.txt
	@touch $(STAMP)

# QGIS finds the plugin as `rs_sage` through this link, the way it finds an installed plugin.
$(PLUGIN_LINKS)/rs_sage:
	@mkdir -p $(PLUGIN_LINKS)
	@ln -sfn $(CURDIR) $(PLUGIN_LINKS)/rs_sage

test: setup
	$(QGIS_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .

demo: setup
	$(QGIS_ENV) $(PY) scripts/demo.py

run: setup
	@if [ -z "$$DISPLAY" ]; then \
		echo "make run needs a display (DISPLAY is not set). Use 'make screenshot' for a virtual one."; exit 1; fi
	HOME=$(CURDIR)/.profile QGIS_PLUGINPATH=$(PLUGIN_LINKS) PYTHONPATH=$(SITE) HF_HUB_OFFLINE=1 \
		$(PY) scripts/qgis_profile.py $(CURDIR)/.profile
	HOME=$(CURDIR)/.profile QGIS_PLUGINPATH=$(PLUGIN_LINKS) PYTHONPATH=$(SITE) HF_HUB_OFFLINE=1 \
		qgis --noversioncheck --code scripts/show_panel.py $$(ls resources/sample/*.tif | head -1)

# A fresh profile each time: QGIS restores saved dock sizes, which would change the pictures.
screenshot: setup
	@mkdir -p out
	rm -rf $(CURDIR)/.profile-shot
	$(PY) scripts/qgis_profile.py $(CURDIR)/.profile-shot
	PROFILE_HOME=$(CURDIR)/.profile-shot SHOT_CODE=$(CURDIR)/scripts/shot_panel.py SHOT_WAIT=120 \
		scripts/screenshot.sh $(DISPLAY_NUM) out/screenshot.png

# A new user's first install in desktop QGIS (clean profile, another python3 first on PATH): plugin from
# our repository via the Plugin Manager's installer, Install dependencies, Download models, Classify extent.
desktop-install: setup
	PY=$(PY) DISPLAY_NUM=$(DISPLAY_NUM) scripts/desktop_install.sh
	cp out/desktop_install/install_*.png docs/screenshots/
	cp out/desktop_install/install.json docs/install_run.json

# The held-out Landsat-8 clip in desktop QGIS: Classify extent as a new user would (looked at, never tuned on).
LANDSAT := $(CURDIR)/../shared/data/gis/LC08_L1TP_224078_20200518_20200518_01_RT.TIF
screenshot-landsat: setup
	@mkdir -p out
	rm -rf $(CURDIR)/.profile-shot
	$(PY) scripts/qgis_profile.py $(CURDIR)/.profile-shot
	PROFILE_HOME=$(CURDIR)/.profile-shot SHOT_CODE=$(CURDIR)/scripts/shot_landsat.py SHOT_WAIT=150 \
		SHOT_RASTER=$(LANDSAT) SHOT_TAG=after scripts/screenshot.sh $(DISPLAY_NUM) out/screenshot.png

# Classify extent and the region question types on the 5 m sample and on the Landsat-8 clip (looked at only).
QUESTIONS := How much of this area is forest?|Is there more water than farmland?|Where are the houses?|What is in this region?
screenshot-questions: setup
	@mkdir -p out
	rm -rf $(CURDIR)/.profile-shot
	$(PY) scripts/qgis_profile.py $(CURDIR)/.profile-shot
	PROFILE_HOME=$(CURDIR)/.profile-shot SHOT_CODE=$(CURDIR)/scripts/shot_questions.py SHOT_WAIT=200 \
		SHOT_TAG=sample SHOT_LABELS="water, forest, farmland, houses, road" SHOT_QUESTIONS="$(QUESTIONS)" \
		scripts/screenshot.sh $(DISPLAY_NUM) out/screenshot.png
	rm -rf $(CURDIR)/.profile-shot
	$(PY) scripts/qgis_profile.py $(CURDIR)/.profile-shot
	PROFILE_HOME=$(CURDIR)/.profile-shot SHOT_CODE=$(CURDIR)/scripts/shot_questions.py SHOT_WAIT=300 \
		SHOT_RASTER=$(LANDSAT) SHOT_TAG=landsat SHOT_LABELS="water, cropland, forest, urban area" \
		SHOT_QUESTIONS="How much of this area is water?|Is there more cropland than forest?|Where is the urban area?|What is in this region?" \
		scripts/screenshot.sh $(DISPLAY_NUM) out/screenshot.png

# Find similar in desktop QGIS on the same two rasters (example: the middle classified tile; looked at only).
screenshot-similar: setup
	@mkdir -p out
	rm -rf $(CURDIR)/.profile-shot
	$(PY) scripts/qgis_profile.py $(CURDIR)/.profile-shot
	PROFILE_HOME=$(CURDIR)/.profile-shot SHOT_CODE=$(CURDIR)/scripts/shot_similar.py SHOT_WAIT=200 \
		SHOT_TAG=sample SHOT_LABELS="water, forest, farmland, houses, road" \
		scripts/screenshot.sh $(DISPLAY_NUM) out/screenshot.png
	rm -rf $(CURDIR)/.profile-shot
	$(PY) scripts/qgis_profile.py $(CURDIR)/.profile-shot
	PROFILE_HOME=$(CURDIR)/.profile-shot SHOT_CODE=$(CURDIR)/scripts/shot_similar.py SHOT_WAIT=300 \
		SHOT_RASTER=$(LANDSAT) SHOT_TAG=landsat SHOT_LABELS="water, cropland, forest, urban area" \
		scripts/screenshot.sh $(DISPLAY_NUM) out/screenshot.png

package: setup
	@mkdir -p out
	$(PY) scripts/package.py out

# A plugin repository of our own (serve out/repo over HTTP, add .../plugins.xml in QGIS).
repo: package
	$(PY) scripts/plugin_repo.py out/rs_sage.zip out/repo $(REPO_URL)

# Slow: trains the ablation variants it has not trained yet (resumes), then writes docs/results.md.
eval: setup
	HF_HUB_OFFLINE=1 $(PY) -m core eval --ablations

bench: setup
	HF_HUB_OFFLINE=1 $(PY) -m core bench

kb: setup
	HF_HUB_OFFLINE=1 $(PY) -m core kb build

clean:
	rm -rf build out .profile
