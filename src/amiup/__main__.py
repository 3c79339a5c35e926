"""`python -m amiup` runs the CLI."""

from amiup.cli.main import main

main()
