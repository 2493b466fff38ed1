"""Organisations, campaigns and targets."""
