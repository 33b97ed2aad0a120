# Sourced by tests/run.sh: make sure a real guacd 1.6.0 is installed for the Guacamole tests.
# shellcheck shell=bash
#
# 1. A local copy of the official source with its builder (CI and developers: ../shared/guacd/build.sh): call it.
# 2. Otherwise download the 1.6.0 release from Apache's archive, check its sha256, configure and build it.
# 3. Otherwise say clearly that the Guacamole tests cannot run; under CI=true that is a failure.
# The tests find guacd through SOHOGW_GUACD (tests/support/guacd.py).

GUACD_PREFIX=${GUACD_PREFIX:-/opt/guacd}
GUACD_VERSION=1.6.0
GUACD_ARCHIVE_URL=https://archive.apache.org/dist/guacamole/$GUACD_VERSION/source/guacamole-server-$GUACD_VERSION.tar.gz

guacd_from_archive() {
    # The release tarball (made with `make dist`) differs from the git archive in ../shared/guacd, so its digest is
    # the one Apache publishes beside it, unless GUACD_RELEASE_SHA256 pins one.
    local work expected
    command -v curl >/dev/null || install_debian_packages <(printf 'curl\nca-certificates\n')
    work=$(mktemp -d)
    curl -fsSL --retry 2 -o "$work/src.tar.gz" "$GUACD_ARCHIVE_URL" || { rm -rf "$work"; return 1; }
    expected=${GUACD_RELEASE_SHA256:-$(curl -fsSL "$GUACD_ARCHIVE_URL.sha256" | awk '{print $1}')}
    if [[ -z "$expected" ]] || ! echo "$expected  $work/src.tar.gz" | sha256sum -c --quiet -; then
        echo "guacd: the downloaded source does not match sha256 ${expected:-(none published)}" >&2
        rm -rf "$work"
        return 1
    fi
    install_debian_packages <(printf '%s\n' make gcc pkg-config libcairo2-dev libjpeg62-turbo-dev libpng-dev uuid-dev \
        freerdp2-dev libvncserver-dev libwebsockets-dev libssl-dev libpango1.0-dev libwebp-dev)
    tar -xzf "$work/src.tar.gz" -C "$work"
    (cd "$work/guacamole-server-$GUACD_VERSION" &&
        ./configure --prefix="$GUACD_PREFIX" --with-freerdp-plugin-dir="$GUACD_PREFIX/lib/freerdp2" --disable-static \
            LDFLAGS=-Wl,--disable-new-dtags >/dev/null &&
        make -j"$(nproc)" >/dev/null && make install >/dev/null)
    local status=$?
    rm -rf "$work"
    return $status
}

ensure_guacd() {
    local shared=../shared/guacd
    if [[ ! -x "$GUACD_PREFIX/sbin/guacd" ]]; then
        if [[ -f "$shared/build.sh" ]]; then
            bash "$shared/build.sh" "$GUACD_PREFIX"
        else
            echo "guacd: no $shared; downloading guacamole-server $GUACD_VERSION from Apache's archive"
            guacd_from_archive || true
        fi
    fi
    if [[ -x "$GUACD_PREFIX/sbin/guacd" ]]; then
        export SOHOGW_GUACD="$GUACD_PREFIX/sbin/guacd"
        "$SOHOGW_GUACD" -v
        return 0
    fi
    echo "guacd: NOT INSTALLED — the Guacamole tests cannot run (no $shared and no verified download)" >&2
    if [[ "${CI:-}" == "true" ]]; then
        exit 1
    fi
}
