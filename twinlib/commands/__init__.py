"""Subcommands of ``twin``: one module each, with ``register(subparsers)``."""
