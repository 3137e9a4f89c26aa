"""The ``gnas`` command line: :mod:`gnas.cli.main` and one module per sub-command."""
