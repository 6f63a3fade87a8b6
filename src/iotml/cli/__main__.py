"""``python -m iotml.cli`` runs the command line."""

from iotml.cli import main

main()
