"""Entry point of the operator command line."""

import sys

from webhook_service.cli import main

sys.exit(main())
