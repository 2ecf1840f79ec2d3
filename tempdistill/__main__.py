import sys

from tempdistill.app.cli import main

sys.exit(main())
