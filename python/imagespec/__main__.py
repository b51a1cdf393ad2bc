from imagespec.cli import main

raise SystemExit(main())
