"""Helpers shared by several test folders (no tests here): tiny recipes, report parsing."""
