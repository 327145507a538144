"""``smartflow bench``: speed yardsticks measured side by side with peers in one run."""
