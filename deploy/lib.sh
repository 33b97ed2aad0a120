# Shared by deploy/embedded.sh and tests/run.sh: install Debian packages that are missing, make the venv.
# shellcheck shell=bash

install_debian_packages() {
    local missing=()
    local name
    for list in "$@"; do
        while read -r name; do
            [[ -z "$name" || "$name" == \#* ]] && continue
            dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" || missing+=("$name")
        done <"$list"
    done
    if ((${#missing[@]})); then
        echo "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

make_venv() {
    local extras="$1"
    if [[ ! -x .venv/bin/python ]]; then
        python3 -m venv .venv
        .venv/bin/pip install -q --upgrade pip
    fi
    .venv/bin/pip install -q -e ".${extras}"
}

# The browser libraries the gateway serves from its own origin (Chart.js), exactly as gateway/web/npm's lock file says.
install_web_libraries() {
    command -v npm >/dev/null || install_debian_packages <(printf 'nodejs\nnpm\n')
    (cd gateway/web/npm && npm ci --no-audit --no-fund --silent)
}

build_seat_viewer() {
    # The seat page's noVNC as one content-hashed file (deploy/seat-viewer/build.mjs), from the versions the lock
    # file pins. Needs Debian's novnc (the source) and npm (the bundler, esbuild).
    command -v npm >/dev/null || install_debian_packages <(printf 'nodejs\nnpm\n')
    (cd deploy/seat-viewer && npm ci --no-audit --no-fund --silent && npm run --silent build)
}

build_seat_watermark() {
    # The seat watermark (desktop_broker/x11/watermark.c) as a small native program: ~1 MiB per seat instead of a
    # Python/Tk process. Needs a C compiler and the Xlib/Xext headers (deploy/packages-runtime.txt).
    mkdir -p build
    cc -O2 -Wall -Wextra -o build/sohogw-seat-watermark desktop_broker/x11/watermark.c -lX11 -lXext
    chmod 755 build build/sohogw-seat-watermark
}
