"""Turnout engine: live database migrations as plain Python (no Airflow imports here).

Phases live in :mod:`turnout.phases`; adapters per database in :mod:`turnout.adapters`;
staging (object storage) in :mod:`turnout.staging`.
"""

__version__ = "0.1.0"
