"""One thin module per command (``python -m pipeline <stage>``): argument parsing, params.yaml,
reading inputs, writing outputs and printing.  The work itself is the domain packages':
:mod:`pipeline.sources`, :mod:`pipeline.trends`, :mod:`pipeline.forecasting`, :mod:`pipeline.laws`,
:mod:`pipeline.report`.
"""
