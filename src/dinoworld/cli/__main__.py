"""``python -m dinoworld.cli VERB ...`` (what ``torchrun -m dinoworld.cli`` runs)."""

import sys

from dinoworld.cli import main

sys.exit(main())
