"""``python -m dinoworld VERB ...`` (same as the ``dinoworld`` console script)."""

import sys

from .cli import main

sys.exit(main())
