from fintune.cli.main import main

raise SystemExit(main())
