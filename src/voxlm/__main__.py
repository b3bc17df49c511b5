from voxlm.cli import main

raise SystemExit(main())
