"""Paper eq. 3, minimised: ``F = E + alpha * C / C_max + mu * P``.

``E`` is the validation error, ``C`` the complexity of the (pruned) network
(parameters, or FLOPs as an option), ``C_max`` that of the largest network of the
search space, and ``P`` the fraction of connections pruned. As printed in the paper,
``+mu*P`` would punish pruning; gnas's default ``mu`` is negative, a reward.

Under successive halving (``--fidelity sha``) rungs rank before errors: each rung
below the last adds :attr:`FitnessModel.rung_step`, more than any error and
complexity term can span, so every candidate of a higher rung is fitter than
every candidate of a lower one and a network scored after one epoch is never
ranked against one trained for nine on their errors alone.
"""
from __future__ import annotations

from gnas.config import RunConfig
from gnas.records import WORST_ERROR, EvalResult
from gnas.genome.protocol import Space
from gnas.search.fidelity import rung_of, top_rung


class FitnessModel:
    """Turns an evaluation result into the scalar the GA minimises."""

    def __init__(self, cfg: RunConfig, space: Space) -> None:
        self.alpha = cfg.evolution.alpha
        self.mu = cfg.evolution.mu
        objectives = cfg.evolution.objectives.split(",")
        # --objectives error,flops measures complexity in FLOPs for both C terms
        self.measure = objectives[1] if len(objectives) > 1 else cfg.space.complexity
        self.c_max = space.c_max
        self.top = top_rung(cfg)

    @property
    def rung_step(self) -> float:
        """What one rung below the last adds: more than the span of ``E + alpha*C/C_max + mu*P``."""
        return WORST_ERROR + self.alpha + abs(self.mu) + 1.0

    @property
    def worst(self) -> float:
        """Worse than any successful network at any rung: a failed candidate never wins."""
        return self.rung_step * (1 + self.top)

    def below_top(self, result: EvalResult) -> float:
        """The rung offset of ``result``: 0 at the last rung and under full fidelity."""
        return (self.top - rung_of(result.metrics, self.top)) * self.rung_step if self.top else 0.0

    def complexity(self, result: EvalResult) -> int:
        return result.params if self.measure == "params" else result.flops

    def objectives(self, result: EvalResult | None) -> tuple[float, float]:
        """(error, complexity / C_max), both minimised, for NSGA-II; failures are worst."""
        if result is None or not result.ok:
            return (WORST_ERROR + 1.0, 2.0)
        return (float(result.val_error) + self.below_top(result), self.complexity(result) / self.c_max)

    def fitness(self, result: EvalResult) -> float:
        if not result.ok:
            return self.worst
        return self.below_top(result) + fitness_value(result.val_error, self.complexity(result),
                                                      self.c_max, result.pruned_fraction,
                                                      self.alpha, self.mu)


def fitness_value(error: float, complexity: float, c_max: float, pruned: float,
                  alpha: float, mu: float) -> float:
    """``E + alpha*C/C_max + mu*P``."""
    return float(error + alpha * complexity / c_max + mu * pruned)
