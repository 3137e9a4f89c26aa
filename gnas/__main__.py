"""``python -m gnas`` is the ``gnas`` command."""
from gnas.cli import main

raise SystemExit(main())
