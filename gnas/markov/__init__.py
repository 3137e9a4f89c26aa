"""Markov-chain analysis of the genetic algorithm (paper §III-B-2) and its per-generation record."""
