#!/usr/bin/env bash
# Install the Debian packages kartapos, its tests and its Debian package build need,
# only those missing. `sysdeps.sh --list` prints the list (tests/test_sysdeps.py checks
# that every program the tests run comes from one of these or an Essential package).
set -euo pipefail
pkgs=(
  pcscd vsmartcard-vpcd   # a real PC/SC stack with a virtual contactless reader (tests)
  swig libpcsclite-dev    # to build pyscard
  linux-libc-dev gcc pkg-config  # to build evdev
  chromium                # the cashier page tests (Playwright drives /usr/bin/chromium)
  fonts-dejavu-core       # a font with Polish glyphs for receipt previews
  systemd                 # systemd-analyze verify, systemd-sysusers/-tmpfiles --root
  udev                    # udevadm (the rules check); Debian ships it apart from systemd
  strace                  # the syscall-filter test
  postgresql              # the city server's tests run on PostgreSQL too (initdb, postgres)
  mount                   # the chaos harness's tmpfs state dir
  # make deb and tests/packaging: the venv is built with Debian's own python3
  python3.11-venv python3-dev dpkg-dev binutils
  lintian                 # the package must be lintian clean
  debootstrap debian-archive-keyring  # a throwaway Debian root to install the package into
)
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi
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
