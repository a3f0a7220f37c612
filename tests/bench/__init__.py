"""Planner benchmark support: synthetic observed state at fleet scale (see `synthetic.py`)."""
