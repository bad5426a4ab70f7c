"""Ladders of models: simulated ones (:mod:`pipeline.ladders.zoo`) and, later, others."""
