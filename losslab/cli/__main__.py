"""``python -m losslab.cli``: the command line."""

from losslab.cli.main import main

raise SystemExit(main())
