"""``python -m klambda_operator``: run the Kopf operator (standalone, no peering).

Settings come from the environment (see :class:`klambda_operator.settings.OperatorSettings`);
credentials from the in-cluster ServiceAccount or ``$KUBECONFIG``.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import kopf

from klambda_operator import handlers  # noqa: F401  (registers the handlers)
from klambda_operator.settings import OperatorSettings


def main() -> int:
    settings = OperatorSettings.from_env()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    memo = kopf.Memo(settings=settings)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            liveness_endpoint=settings.liveness_endpoint or None,
            memo=memo,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
