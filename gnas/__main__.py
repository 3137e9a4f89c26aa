"""``python -m gnas`` is the ``gnas`` command."""
from gnas.cli.main import main

raise SystemExit(main())
