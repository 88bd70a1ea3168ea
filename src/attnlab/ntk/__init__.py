"""Neural tangent kernels: exact empirical kernels (structured and generic paths), spectra,
drift along training, infinite-width Monte-Carlo kernels and linearised training dynamics."""

from attnlab.ntk.drift import NTKDriftRecorder, NTKRecorder
from attnlab.ntk.empirical import METHODS, NTK, empirical, has_structured_path
from attnlab.ntk.infinite_width import MonteCarloKernel, mc_average_ntk, transformer_mc_kernel
from attnlab.ntk.linearized import LinearizedDynamics
from attnlab.ntk.operator import ntk_diagonal, ntk_operator
from attnlab.ntk.plots import plot_loss_prediction
from attnlab.ntk.spectrum import (SpectrumSummary, condition_number, lanczos_eigenvalues,
                                  smallest_eigenvalue, spectrum, summarize)

__all__ = ["METHODS", "NTK", "empirical", "has_structured_path", "NTKDriftRecorder", "NTKRecorder",
           "MonteCarloKernel", "mc_average_ntk", "transformer_mc_kernel", "LinearizedDynamics", "ntk_diagonal",
           "ntk_operator", "plot_loss_prediction", "SpectrumSummary", "condition_number", "lanczos_eigenvalues",
           "smallest_eigenvalue", "spectrum", "summarize"]
