#!/bin/sh
# Debian's chromium for the dashboard's browser test: Playwright drives this binary
# (executable_path=/usr/bin/chromium); its own browser download is never used.
exec sh "$(dirname "$0")/ensure_deb.sh" chromium /usr/bin/chromium
