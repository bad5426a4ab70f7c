"""The data side: where score rows come from, before any law sees them.

``families`` (the registry of published families: sizes, tokens, citations), ``published``
(the readers of upstream result files), ``lm_eval`` (import of your own lm-eval output folders),
``evaluation`` (the evaluate stage's settings, checkpoints and records) and ``lm_eval_run``
(running lm-eval on them), ``taskloss`` (task losses and chance levels from per-sample
log-likelihoods).  Every table leaves here validated by :mod:`pipeline.scores`.
"""
