"""The layer-wise competition step (paper "Layer-wise Competition"; DESIGN.md, the search, step 2).

After every evaluation round the step rebuilds the scoreboard from the
stored evaluations, assembles champion individuals from the best variant of every
layer, evaluates them (kind ``champion``) and asks the loop to let each one
replace the worst non-elite individual it beats. Its state (the scoreboard and
the champions' records) is its part of ``state.json``. The stage-wise crossover
that goes with it is wired by the session
(:func:`gnas.competition.scoreboard.stagewise_crossover`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from gnas.competition.scoreboard import (build_champion, credited, host_indices, scoreboard,
                                         stage_variants)
from gnas.config import RunConfig
from gnas.genome.space import Bits, SearchSpace, bits_to_str
from gnas.records import Kind, Operator
from gnas.search.operators import sel_best
from gnas.search.step import GenerationView, StepDecision, TrainRequest, replace_worst

CHAMPION_HISTORY = 100                   # champion records kept in state.json


class CompetitionStep:
    """Scoreboard and champions, after every evaluation round."""

    name = "competition"

    def __init__(self, cfg: RunConfig, space: SearchSpace) -> None:
        self.champions_per_round = cfg.evolution.champions
        self.elite = cfg.evolution.elite
        self.space = space
        self.board: dict[str, Any] = {}

    def get_state(self) -> dict[str, Any]:
        return self.board

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.board = dict(state)

    def on_trained(self, request: TrainRequest, metrics: Mapping[str, Any]) -> None:
        """Never called: the competition asks for no training to the end."""

    def after_evaluation(self, view: GenerationView) -> StepDecision:
        g = view.generation
        keys = set(view.keys)
        board = scoreboard(self.space, credited(view.evaluations(), g, keys), g)
        history = list(self.board.get("champions", []))
        decision, records = self.champions(view, board)
        keys |= {r["key"] for r in records}
        population = list(view.population)
        for r in decision.replacements:
            population[r.slot] = r.genome
        board = scoreboard(self.space, credited(view.evaluations(), g, keys), g, population)
        board["champions"] = (history + records)[-CHAMPION_HISTORY:]
        self.board = board
        return decision

    def champions(self, view: GenerationView, board: Mapping[str, Any]
                  ) -> tuple[StepDecision, list[dict[str, Any]]]:
        """Build and evaluate this round's champions; the replacements and one record each."""
        g, present = view.generation, set(view.keys)
        built: dict[str, tuple[Bits, Bits]] = {}
        for i in host_indices(view.fitness, view.keys, self.champions_per_round):
            bits = build_champion(self.space, view.population[i], board)
            built.setdefault(view.key_of(bits), (bits, view.population[i]))
        fresh = [k for k in built if k not in present]
        results = view.evaluate([built[k][0] for k in fresh], Kind.CHAMPION, None)
        scores = {k: view.fitness_of(r) for k, r in zip(fresh, results)}
        order = sorted(built, key=lambda k: (scores.get(k, math.inf), k))
        candidates = [k for k in order if k in scores]
        protected = view.elite_slots | set(sel_best(view.fitness, self.elite))
        replacements, accepted = replace_worst(
            view.fitness, view.keys, protected,
            [(built[k][0], k, scores[k]) for k in candidates],
            operator=Operator.CHAMPION, parents=[built[k][1] for k in candidates])
        outcome = dict(zip(candidates, accepted))
        replaced = {r.key: view.keys[r.slot] for r in replacements}
        records = []
        for key in order:
            bits, _host = built[key]
            status = ("in population" if key not in scores
                      else "accepted" if outcome[key] else "rejected")
            records.append({"generation": g, "key": key, "genome": bits_to_str(bits),
                            "variants": [v.name for v in stage_variants(self.space, bits)],
                            "fitness": scores.get(key), "outcome": status,
                            "replaced": replaced.get(key)})
        return StepDecision(tuple(replacements)), records
