#!/usr/bin/env bash
# The Debian packages the default keyword bank speaks with (docs/data.md, "Voices: --tts"):
# Flite and Festival with three English voices. Installs them with apt-get when run as root and
# they are missing; otherwise prints the command and leaves the choice to you (a bank that needs
# them then stops with an error naming the same command). Nothing else on the system is touched.
set -euo pipefail
PACKAGES="flite festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "system packages: flite and festival voices installed"
    exit 0
fi
cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "system packages: installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
    echo "system packages missing:$missing; the default keyword bank needs them: sudo sh -c '$cmd'" >&2
fi
