#!/usr/bin/env bash
# The README's main job: Locust's shared-key scenario (many developers on two shared API
# keys) against the embedded reference gateway -- first clean, then with the seed-000 bug
# (X-Request-ID not forwarded). Expected: the first run is clean (exit 0), the second is
# caught as CROSSTALK (exit 1). Each run is bounded (20 users, 15 s).
set -uo pipefail
cd "$(dirname "$0")/.."
LOCUST=(.venv/bin/locust -f locustfiles/shared_key.py --headless -u 20 -r 20 -t 15s --only-summary)

echo "== 1/2: clean gateway (expect: CLEAN, exit 0)"
"${LOCUST[@]}"; clean=$?
echo
echo "== 2/2: gateway that does not forward X-Request-ID (expect: CROSSTALK, exit 1)"
SESSIONSTORM_TARGET_BUGS=no-request-id "${LOCUST[@]}"; buggy=$?
echo
if [ "$clean" -eq 0 ] && [ "$buggy" -eq 1 ] && grep -q CROSSTALK reports/latest/results.json; then
  echo "demo: both verdicts as expected (clean: exit 0; no-request-id: CROSSTALK, exit 1); see reports/latest"
else
  echo "demo: unexpected verdicts (clean exit $clean, buggy exit $buggy); see reports/" >&2
  exit 1
fi
