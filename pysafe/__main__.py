from pysafe.cli import main

raise SystemExit(main())
