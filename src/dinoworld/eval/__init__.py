"""Evaluations: rollout errors on videos (:mod:`.rollout`), the held-out action check (:mod:`.actions`), and the
paper's benchmarks, one package each: intuitive physics (:mod:`.physics`) and dense forecasting (:mod:`.forecast`)."""
