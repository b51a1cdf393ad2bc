import sys

from imagespec.cli import main

sys.exit(main())
