"""`python -m attnlab.cli ...`: the `attnlab` command."""

from attnlab.cli import app

app()
