"""`python -m evidence` is the `evidence` command."""

from evidence.cli import main

main()
