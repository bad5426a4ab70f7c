#!/usr/bin/env bash
# The report test renders reports/index.html in headless Chromium (Debian's package).
# Install it where missing and where we may (root with apt); otherwise that test skips.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup_browser: could not install chromium; the browser test will be skipped" >&2
fi
exit 0
