"""capcast: downstream-capability forecasting for language models."""
__version__ = "0.1.0"
