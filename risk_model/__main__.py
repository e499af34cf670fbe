"""``python -m risk_model``."""

from risk_model.cli import main

raise SystemExit(main())
