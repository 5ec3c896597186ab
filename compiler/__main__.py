"""`python -m snnc` runs the command line."""
from snnc.cli import entry

entry()
