"""Reports: scaling-law fits with bootstrap intervals (fit.py), verdicts (verdict.py), figures and the
HTML/Markdown report."""

from attnlab.report.experiment import (bound_experiment, every_experiment, ordering_experiment, scaling_experiment,
                                      stacked_figure)
from attnlab.report.figures import (new_figure, plot_curves, plot_groups, plot_scaling, plot_stacked,
                                    pooled_block_statistics, save_figure, seed_statistics)
from attnlab.report.fit import Fit, bootstrap, fit_exponential, fit_log_trend, fit_power_law, fit_trend
from attnlab.report.html import write_report
from attnlab.report.result import ExperimentResult
from attnlab.report.verdict import (SlopePrediction, Status, Verdict, interval_verdict, judge, judge_bound,
                                    judge_every, judge_no_growth, judge_order, judge_sign, measurement)

__all__ = ["ExperimentResult", "Fit", "SlopePrediction", "Status", "Verdict", "bootstrap", "bound_experiment",
           "every_experiment", "fit_exponential", "fit_log_trend", "fit_power_law", "fit_trend", "interval_verdict",
           "judge", "judge_bound", "judge_every", "judge_no_growth", "judge_order", "judge_sign", "measurement",
           "new_figure", "ordering_experiment", "plot_curves", "plot_groups", "plot_scaling", "plot_stacked",
           "pooled_block_statistics", "save_figure", "scaling_experiment", "seed_statistics", "stacked_figure",
           "write_report"]
