"""Forecasting: the one core behind both front doors (the forecast stage and the family CLI)."""
