"""``python -m mmrl`` runs the ``mmrl`` command line."""

import sys

from mmrl.cli import main

sys.exit(main())
