"""`python -m sharpdepth ...` is the same as the `sharpdepth` command."""

from .cli.main import entry

entry()
