"""Experiments built on the library (the claims study): experiment code, not library core."""
