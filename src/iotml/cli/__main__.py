"""``python -m iotml.cli`` runs the command line."""

from iotml.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
