"""Equivalence judges, one file each; `triggers.equivalence.make_judge` builds them by name."""
