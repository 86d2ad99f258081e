#!/usr/bin/env bash
# Install the Debian packages kartapos and its tests need, only those missing.
#   pcscd, vsmartcard-vpcd     real PC/SC stack with a virtual contactless reader (tests)
#   swig, libpcsclite-dev      to build pyscard
#   chromium                   the cashier page tests (Playwright drives /usr/bin/chromium)
#   fonts-dejavu-core          a font with Polish glyphs for receipt previews
#   systemd, strace            systemd-analyze verify of the units; the syscall-filter test
#   linux-libc-dev, gcc        to build evdev
set -euo pipefail
pkgs=(pcscd vsmartcard-vpcd swig libpcsclite-dev chromium fonts-dejavu-core systemd strace linux-libc-dev gcc pkg-config)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "sysdeps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
