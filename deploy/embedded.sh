#!/usr/bin/env bash
# Install and run the gateway on its embedded defaults: SQLite, the built-in CA and directory, X11 kiosk seats.
# Run from the repository root as root on Debian 12: `sudo ./deploy/embedded.sh`. Then open the printed URL.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

install_debian_packages deploy/packages-runtime.txt
make_venv ""

export SOHOGW_DATA_DIR="${SOHOGW_DATA_DIR:-$PWD/data}"
mkdir -p "$SOHOGW_DATA_DIR"
chmod 700 "$SOHOGW_DATA_DIR"
passphrase_file="$SOHOGW_DATA_DIR/ca-passphrase"
if [[ ! -f "$passphrase_file" ]]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$passphrase_file")
fi
export SOHOGW_CA__PASSPHRASE_FILE="$passphrase_file"

.venv/bin/sohogw db upgrade
[[ -f "$SOHOGW_DATA_DIR/ca/issuing-ca.cert.pem" ]] || .venv/bin/sohogw ca init
echo "SOHO Gateway: open http://127.0.0.1:${SOHOGW_LISTEN_PORT:-8080}/ in a browser"
exec .venv/bin/sohogw serve
