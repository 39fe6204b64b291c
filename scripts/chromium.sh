# Sourced by scripts/test.sh: the dashboard's browser tests drive Debian's
# Chromium (never a downloaded browser).
. scripts/packages.sh
ensure_chromium() { ensure_package chromium chromium "the dashboard's browser tests"; }
