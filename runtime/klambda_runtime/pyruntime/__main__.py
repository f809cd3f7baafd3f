"""``python -m klambda_runtime.pyruntime``: the built-in runtime in a fresh interpreter."""

import sys

from klambda_runtime.pyruntime.bootstrap import main

sys.exit(main())
