"""``python -m harness.clients.reference``: run the reference client."""

import sys

from harness.clients.reference.main import main

sys.exit(main())
