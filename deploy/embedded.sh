#!/usr/bin/env bash
# Install and run the gateway on its embedded defaults: SQLite, the built-in CA and directory, X11 kiosk seats.
# Run from the repository root as root on Debian 12: `sudo ./deploy/embedded.sh`. Then open the printed URL.
# The first run creates demo accounts and an agent certificate, and writes how to use them to data/first-run.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

install_debian_packages deploy/packages-runtime.txt
make_venv ""

export SOHOGW_DATA_DIR="${SOHOGW_DATA_DIR:-$PWD/data}"
export SOHOGW_LISTEN_PORT="${SOHOGW_LISTEN_PORT:-8443}"
export SOHOGW_PUBLIC_URL="${SOHOGW_PUBLIC_URL:-https://127.0.0.1:$SOHOGW_LISTEN_PORT}"
mkdir -p "$SOHOGW_DATA_DIR"
chmod 700 "$SOHOGW_DATA_DIR"
secret() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
passphrase_file="$SOHOGW_DATA_DIR/ca-passphrase"
[[ -f "$passphrase_file" ]] || (umask 077 && secret >"$passphrase_file")
export SOHOGW_CA__PASSPHRASE_FILE="$passphrase_file"
export SOHOGW_PORTAL__TLS_CERT_FILE="$SOHOGW_DATA_DIR/portal.crt" SOHOGW_PORTAL__TLS_KEY_FILE="$SOHOGW_DATA_DIR/portal.key"
sohogw=.venv/bin/sohogw

"$sohogw" db upgrade
[[ -f "$SOHOGW_DATA_DIR/ca/issuing-ca.cert.pem" ]] || "$sohogw" ca init
if [[ ! -f "$SOHOGW_DATA_DIR/first-run.txt" ]]; then
    "$sohogw" cert issue --kind server --dns localhost --ip 127.0.0.1 --out "$SOHOGW_DATA_DIR/portal"
    agent_pw=$(secret) supervisor_pw=$(secret) admin_pw=$(secret) p12_pw=$(secret)
    # Secrets go to sohogw on standard input (here-strings), never as arguments: /proc/PID/cmdline is public.
    "$sohogw" user add agent --group SOHO-Agents --upn agent@soho.local --display-name "Demo Agent" \
        --password-file - <<<"$agent_pw"
    "$sohogw" user add supervisor --group SOHO-Supervisors --display-name "Demo Supervisor" \
        --password-file - <<<"$supervisor_pw"
    "$sohogw" user add admin --group SOHO-SecurityAdmins --group SOHO-HR --display-name "Demo Admin" \
        --password-file - <<<"$admin_pw"
    "$sohogw" cert issue --upn agent@soho.local --wireguard-key "$(wg genkey | wg pubkey)" \
        --out "$SOHOGW_DATA_DIR/agent.p12" --p12-passphrase-file - <<<"$p12_pw"
    admin_code=$("$sohogw" totp issue-code admin | awk '{print $NF}')  # privileged TOTP enrolment needs it (24 h)
    (umask 077 && cat >"$SOHOGW_DATA_DIR/first-run.txt" <<EOT
SOHO Gateway demo accounts (built-in directory). Portal: $SOHOGW_PUBLIC_URL/
Trust the CA in your browser: $SOHOGW_DATA_DIR/ca/root-ca.cert.pem
supervisor / $supervisor_pw      (no certificate needed)
admin      / $admin_pw      (security admin and HR; enrols a TOTP second factor at first sign-in
                with the one-time enrolment code $admin_code; later codes: sohogw totp issue-code admin)
agent      / $agent_pw      (import $SOHOGW_DATA_DIR/agent.p12 into the browser first, passphrase $p12_pw)
EOT
    )
fi
cat "$SOHOGW_DATA_DIR/first-run.txt"
exec "$sohogw" serve
