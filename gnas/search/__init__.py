"""The search loop (paper Algorithm 1): operators, fitness, steps, callbacks, statistics."""
