"""Pruning (paper §III-B-1): Markov- and saliency-ranked cuts, weight masks, the pruning step."""
