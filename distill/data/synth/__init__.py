"""Synthetic datasets for the runnable defaults: a keyword bank and an FSD50K-like event set."""
