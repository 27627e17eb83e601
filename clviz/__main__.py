"""``python -m clviz``: the same as the ``clviz`` command."""

from clviz.cli import main

raise SystemExit(main())
