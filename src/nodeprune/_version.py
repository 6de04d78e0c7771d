"""The version of nodeprune (one place: the package, the CLI and result records read it)."""

__version__ = "0.1.0.dev0"
