"""Experiments built on the standard pipeline: ablations (:mod:`.ablate`) and the multimodal demo data."""
