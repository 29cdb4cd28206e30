#!/usr/bin/env bash
# The README's main job: the shared-key scenario (10 developers on one API key) against
# the embedded reference gateway, clean and then with the seed-000 bug (no X-Request-ID
# forwarded). The clean run must be clean; the buggy one must be caught as CROSSTALK.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "== 1/2: clean gateway (expect: CLEAN)"
"$BIN/sessionstorm" run shared_key
echo
echo "== 2/2: gateway that does not forward X-Request-ID (expect: CROSSTALK)"
"$BIN/sessionstorm" run shared_key --bugs no-request-id --expect CROSSTALK
echo
echo "demo: both verdicts as expected; runs are under reports/ (reports/latest is the last)"
