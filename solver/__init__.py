"""The optimisation core: which candidate causal model explains which inputs.

numpy, scipy, PuLP, highspy and SCS only: this package never imports torch, ray,
``intervention`` or ``service``.
"""

from solver.api import Solver, SolverConfigError, frontier, solve
from solver.certificate import Certificate
from solver.data import IIADataError, PairwiseIIA, PerInputIIA, load_iia
from solver.memory import MemoryEstimateError
from solver.result import Frontier, Partition
from solver.sparse_data import SparsePairwiseIIA
from solver.verify import PartitionCheckError, check_partition

__all__ = [
    "Certificate",
    "Frontier",
    "IIADataError",
    "MemoryEstimateError",
    "PairwiseIIA",
    "Partition",
    "PartitionCheckError",
    "PerInputIIA",
    "Solver",
    "SolverConfigError",
    "SparsePairwiseIIA",
    "check_partition",
    "frontier",
    "load_iia",
    "solve",
]
