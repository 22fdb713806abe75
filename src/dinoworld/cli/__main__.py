"""``python -m dinoworld.cli VERB ...`` (what ``torchrun -m dinoworld.cli`` runs)."""

import sys

from . import main

sys.exit(main())
