"""Trends: the shape of every score curve over scale, its forecast, and where it crosses chance.

A *curve* is one (suite, family, task, metric, num_fewshot) over the family's models at their
final checkpoint (the largest step, or the stepless row).  Each curve gets one label:

``positive``     better with scale (a significant trend)
``emergent``     the smallest scales jointly within noise of chance, then a significant rise
``inverse``      worse with scale (a significant decline: inverse scaling, McKenzie et al. 2023)
``u_shaped``     worse, then better: the one-break fit turns inside the data (Wei et al. 2022b)
``inverted_u``   better, then worse
``flat``         no form beats a constant (or chance) and the constant fits within noise
``noisy``        no form beats a constant, and the constant does not fit the stated errors
``insufficient: <reason>``  fewer than 4 scales, or no stderr (never guessed)

Directions are in *performance*: higher accuracy is better, lower loss is better.  The tests,
forms and thresholds are described in :mod:`pipeline.trends.shapes` and docs/trends.md; every knob is
in params.yaml ``trends:``.

Forecasts: each labelled curve is predicted at 2x, 10x and 100x its largest scale with a 90%
predictive interval (parametric bootstrap from the per-point stderr, the form re-chosen in
every replicate, plus a new measurement's noise).  Emergent and at-chance curves get the scale
where accuracy crosses chance + margin, from (in order of preference) the task loss or the
probability of the correct answer (two-step: loss vs compute, accuracy vs loss; Schaeffer et
al. 2023/2024), the observational capability PCs (Ruan et al. 2024), and the accuracy fit
itself.  Inverse curves get a turn test (does a one-break fit that turns back up inside the
forecast range fit better, worse or no differently than one that does not?).

Curves across checkpoints (one model over training steps, x = compute) are labelled too, into a
separate table.  The backtest (splits in params.yaml) fits on small models and predicts larger
ones, reporting label agreement and interval coverage as DVC metrics.

Modules: ``settings`` (every knob and its default), ``curves`` (which rows make a curve),
``banks`` and ``shapes`` (the forms and the shape tests that give the label), ``forecast_forms``
and ``fit`` (the forecast and its interval), ``emergence`` (where an accuracy crosses chance +
margin), ``analysis`` (all of it over a scores table, and the report's section), ``backtest``
(labels and forecasts from the small models; the crossing point).  The stage, with its files,
is :mod:`pipeline.stages.trends`.
"""
