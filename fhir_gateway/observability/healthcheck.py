"""Container health probe: ``python -m fhir_gateway.observability.healthcheck``.

The runtime image has no curl or wget (fewer tools for an intruder), so Docker's HEALTHCHECK runs
this instead. It asks ``/health`` (process alive), not ``/ready``: a database outage should make
the orchestrator stop routing traffic, not restart a healthy process.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(port: int, timeout: float = 3.0) -> bool:
    url = f"http://127.0.0.1:{port}/health"
    try:
        # A fixed loopback http URL; no user input reaches it.
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    port = int(os.environ.get("FHIR_GATEWAY_PORT", "8080"))
    return 0 if check(port) else 1


if __name__ == "__main__":
    sys.exit(main())
