"""``python -m dinoworld VERB ...`` (same as the ``dinoworld`` console script)."""

import sys

from dinoworld.cli import main

sys.exit(main())
