"""One module per ``gnas`` sub-command, each with ``add_parser`` and ``run``."""
