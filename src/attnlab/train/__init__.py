"""Training: the step loop (trainer), projections, stacking of seeds, the reference run of the
optimisation gap (reference.py) and the registry of named recorders (recorders.py), whose entries
and versions give RESULTS_VERSION, part of every run id."""

from attnlab.train.recorders import RESULTS_VERSION

__all__ = ["RESULTS_VERSION"]
