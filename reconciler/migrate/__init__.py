"""Converters from other tools' configurations (reconcile import)."""
