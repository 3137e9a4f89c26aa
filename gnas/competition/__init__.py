"""Layer-wise competition: per-layer scoreboard of variants, champions, stage-wise crossover."""
