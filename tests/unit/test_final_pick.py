"""The final pick reorders the re-trained candidates only; a pruned network above them stays."""
from __future__ import annotations

from gnas.search.final import place_pick_winner


def entries(*keys: str) -> list[dict]:
    return [{"key": k, "genome": k} for k in keys]


def keys(fame: list[dict]) -> list[str]:
    return [e["key"] for e in fame]


def test_the_winner_moves_to_the_best_candidates_place():
    fame = entries("a", "b", "c", "d")
    assert keys(place_pick_winner(fame, "c", {"a", "b", "c"})) == ["c", "a", "b", "d"]


def test_a_pruned_network_ranked_above_the_candidates_keeps_first_place():
    fame = entries("pruned", "base", "b", "c")  # "pruned" is not re-trained: not a candidate
    placed = place_pick_winner(fame, "b", {"base", "b"})
    assert keys(placed) == ["pruned", "b", "base", "c"]


def test_the_winner_already_first_changes_nothing():
    fame = entries("a", "p", "b")
    assert keys(place_pick_winner(fame, "a", {"a", "b"})) == ["a", "p", "b"]
    assert sorted(keys(place_pick_winner(fame, "b", {"a", "b"}))) == sorted(keys(fame))
