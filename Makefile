# make demo : install, then run the main job on built-in synthetic data
# make test : install, then run the test suite
PY ?= python3

.PHONY: setup demo test bench-baselines
setup:
	bash scripts/setup.sh

demo: setup
	fusionrec demo

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -ra
