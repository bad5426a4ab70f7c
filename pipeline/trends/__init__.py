"""Trends: the shape of every score curve over scale, its forecast and where it crosses chance."""
