#!/bin/sh
# Installs what the full test suite needs on Debian: the pinned Deno (from npm), the npm
# dependencies (frozen lockfile) and the Debian tools the interop tests drive.
set -e
cd "$(dirname "$0")/.."
# postgresql: the PostgreSQL store tests start servers of their own (initdb in a temporary
# directory, a loopback port); the cluster Debian sets up is not used.
PKGS="openssl strace swaks libnet-ssleay-perl libio-socket-ssl-perl postfix dovecot-imapd dovecot-lmtpd isync getmail6 coturn dnsmasq chromium python3 pebble postgresql"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # Postfix asks configuration questions; answer "No configuration" so it stays off.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "install_deps: not root; missing Debian packages:$missing (their tests are skipped)" >&2
  fi
fi
./scripts/deno install --frozen >/dev/null
