"""``python -m hubbub``: the same as the ``hubbub`` command."""

from hubbub.cli import main

raise SystemExit(main())
