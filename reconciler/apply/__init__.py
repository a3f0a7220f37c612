"""Carrying out a plan through the ZFS port."""
