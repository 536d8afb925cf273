"""Subcommands of the `distill` CLI: each module here defines `register(subparsers)`."""
