"""Adapters between Tether and agent frameworks."""
