import sys

from vgssl.cli import main

sys.exit(main())
