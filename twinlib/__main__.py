"""``python -m twinlib``: the same as the ``twin`` command."""
from twinlib.cli import main

raise SystemExit(main())
