"""Forecasting: one core behind both front doors, the forecast stage (every target of params.yaml)
and the family forecast (``forecast --family``, ``report --family``: one family of any table).

``targets`` (a law fitted on a target's rows, predicted at the target and along its recipe),
``comparison`` (the families' compute-efficiency offsets), ``family_skills`` (the skill law's
family comparison), ``family`` (one family at any (N, D), the method chosen by its own nested
backtest), ``diagnostics`` (a two-step forecast's step-1 loss fit and step-2 link, as rows for the
report's figures), ``backtest`` (declared splits and folds, one law on one split) and ``scoring`` (MAE,
coverage, rank correlation, the DVC metrics).  Nothing here reads params.yaml or writes a file.
"""
