"""Shipped recipes (YAML files in this folder), found by name with `distill recipes`."""
