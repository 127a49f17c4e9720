"""`python -m descent` is the same as the `descent` command."""

from descent.cli import console_main

raise SystemExit(console_main())
