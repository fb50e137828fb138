#!/usr/bin/env bash
# ctest prometheus_alert_rules: deploy/prometheus/alerts.yml is valid
# (promtool check rules) and its unit tests pass (promtool test rules
# alerts.test.yml): each alarm alerts with its level as severity, a level
# change moves the alert, an ended alarm (0) does not alert.
# promtool comes from Debian's 'prometheus' package (scripts/install-deps.sh);
# without it the test is skipped (77), never passed.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)/deploy/prometheus
if ! command -v promtool >/dev/null 2>&1; then
  echo "prometheus_alert_rules: promtool not found; install Debian's 'prometheus' package (scripts/install-deps.sh)" >&2
  exit 77
fi
cd "$here"
promtool check rules alerts.yml
promtool test rules alerts.test.yml
