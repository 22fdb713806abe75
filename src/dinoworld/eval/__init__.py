"""Evaluations: rollout errors on videos, the action check, and (next) the paper's benchmarks."""
