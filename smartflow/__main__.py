"""``python -m smartflow`` runs the command-line interface."""

from smartflow.app.main import main


raise SystemExit(main())
