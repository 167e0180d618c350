"""``python -m fairdht`` runs the command line."""

from fairdht.cli.main import main

raise SystemExit(main())
