"""`python -m lesionops` is the `lesionops` command."""

from lesionops.cli import app

app(prog_name="lesionops")
