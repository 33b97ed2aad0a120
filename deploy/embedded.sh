#!/usr/bin/env bash
# Install and run the gateway on its embedded defaults: SQLite, the built-in CA and directory, X11 kiosk seats.
# Run from the repository root as root on Debian 12: `sudo ./deploy/embedded.sh`. Then open the printed URL.
# The first run creates demo accounts and an agent certificate, and writes how to use them to data/first-run.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

if [[ "${SOHOGW_EMBEDDED_INSTALL:-yes}" == yes ]]; then  # tests say "no": their run installed all of it already
    install_debian_packages deploy/packages-runtime.txt
    make_venv ""
    install_web_libraries
    build_seat_viewer
    build_seat_watermark
fi

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

# The VPN needs root (CAP_NET_ADMIN) and wireguard-go or the kernel module; as root it is on, so a newcomer sees the
# agent's peer come and go. Its endpoint is the demo link first-run.txt sets up; a real home PC needs this host's
# public address instead (SOHOGW_VPN__ENDPOINT).
if [[ $EUID -eq 0 ]] && command -v nft >/dev/null && { [[ -d /sys/module/wireguard ]] || command -v wireguard-go >/dev/null; }; then
    export SOHOGW_VPN__ENABLED="${SOHOGW_VPN__ENABLED:-true}"
    export SOHOGW_VPN__ENDPOINT="${SOHOGW_VPN__ENDPOINT:-10.98.0.1:51820}"
fi
vpn_interface="${SOHOGW_VPN__INTERFACE:-sohogw0}"

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
    # The agent's WireGuard key pair: the public half goes into the certificate, the private half stays with the
    # "home PC" (here: the data directory, for the tunnel demo below).
    (umask 077 && wg genkey >"$SOHOGW_DATA_DIR/agent-wg.key")
    "$sohogw" cert issue --upn agent@soho.local --wireguard-key "$(wg pubkey <"$SOHOGW_DATA_DIR/agent-wg.key")" \
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
    if [[ "${SOHOGW_VPN__ENABLED:-false}" == true ]]; then
        (umask 077 && cat >>"$SOHOGW_DATA_DIR/first-run.txt" <<EOT

The VPN is on (WireGuard interface $vpn_interface). Try the tunnel as a home PC would, from a network namespace
linked to this host (as root; each line starting with \$ is a command):
  $ ip netns add sohogw-home && ip -n sohogw-home link set lo up
  $ ip link add sohogw-demo type veth peer name eth0 netns sohogw-home
  $ ip addr add 10.98.0.1/30 dev sohogw-demo && ip link set sohogw-demo up
  $ ip -n sohogw-home addr add 10.98.0.2/30 dev eth0 && ip -n sohogw-home link set eth0 up
Sign in as agent, save "My tunnel" from the agent page as ./agent.conf, then give it the agent's private key:
  $ sed -i "s|^PrivateKey = .*|PrivateKey = \$(cat $SOHOGW_DATA_DIR/agent-wg.key)|" agent.conf
  $ ip netns exec sohogw-home wireguard-go wg-agent
  $ ip netns exec sohogw-home wg setconf wg-agent <(wg-quick strip ./agent.conf)
  $ ip -n sohogw-home addr add "\$(sed -n 's/^Address = \([^,]*\),.*/\1/p' agent.conf)" dev wg-agent
  $ ip -n sohogw-home link set wg-agent up && ip -n sohogw-home route add 10.77.0.0/16 dev wg-agent
The agent's peer is listed while the agent is signed in, and gone after sign-out:
  $ wg show $vpn_interface peers
A stand-in for the company application on the gateway's tunnel address (policy lets agents reach 10.77.0.1:443):
  $ python3 -m http.server --bind 10.77.0.1 443
From the home namespace it answers while the agent is signed in; after sign-out the same command times out:
  $ ip netns exec sohogw-home curl -sS -m 3 -o /dev/null -w '%{http_code}\n' http://10.77.0.1:443/
Clean up: ip netns del sohogw-home (the veth pair goes with it).
EOT
        )
    fi
fi
cat "$SOHOGW_DATA_DIR/first-run.txt"
exec "$sohogw" serve
