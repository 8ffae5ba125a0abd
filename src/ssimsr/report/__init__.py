"""Figures and the report's outputs (the ``figures`` and ``report`` rules); the tables are
in ``ssimsr.tables``."""
