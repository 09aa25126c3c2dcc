from serve.cli.docs.generate import main

raise SystemExit(main())
