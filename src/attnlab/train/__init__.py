"""Training: the step loop (trainer), projections, stacking of seeds and the recorders of curves."""

RESULTS_VERSION = "2"   # placeholder: derived from the recorder registry once it lands
