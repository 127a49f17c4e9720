"""`python -m descent` is the same as the `descent` command."""

from descent.cli import main

raise SystemExit(main())
