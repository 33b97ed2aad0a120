# SOHO Gateway images for deploy/compose.yaml, from Debian 12 packages, PyPI and the npm lock file only.
#   docker build --target gateway -t sohogw .            the gateway (sohogw serve)
#   docker build --target guacamole-lite -t sohogw-guacamole-lite .
# The gateway runs as root inside its container because WireGuard and nftables need CAP_NET_ADMIN and Docker gives
# ambient capabilities to root only; compose drops every other capability and makes the root file system read-only.

FROM debian:12-slim AS guacamole-lite
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's own nodejs and npm; versions follow the bookworm point release (pinning them would break rebuilds).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sohogw/deploy/guacamole-lite
COPY deploy/guacamole-lite/package.json deploy/guacamole-lite/package-lock.json ./
# guacamole-common-js (a dev dependency of server.js) is the browser side the gateway serves at /guacamole-js.
RUN npm ci --no-audit --no-fund
COPY deploy/guacamole-lite/server.js ./
COPY deploy/guacamole-lite/lib ./lib
RUN useradd --system --uid 990 --home-dir /nonexistent --shell /usr/sbin/nologin guaclite
USER 990
EXPOSE 8081
# The token key comes from a file (a compose secret), not from the compose file's environment.
CMD ["bash", "-c", "GUACLITE_KEY_HEX=$(< /run/secrets/guacamole-lite-key) exec node server.js"]

FROM debian:12-slim AS web-libraries
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sohogw/gateway/web/npm
COPY gateway/web/npm/package.json gateway/web/npm/package-lock.json ./
# Chart.js, served by the gateway from its own origin (gateway/web/libraries.py).
RUN npm ci --no-audit --no-fund

FROM debian:12-slim AS seat-viewer
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's noVNC bundled by esbuild into one content-hashed file (deploy/seat-viewer/build.mjs).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm novnc ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sohogw/deploy/seat-viewer
COPY deploy/seat-viewer/package.json deploy/seat-viewer/package-lock.json deploy/seat-viewer/build.mjs ./
RUN npm ci --no-audit --no-fund && npm run build

FROM debian:12-slim AS gateway
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The same list the embedded installer uses (deploy/packages-runtime.txt): one list of what the gateway needs.
COPY deploy/packages-runtime.txt /tmp/packages-runtime.txt
# hadolint ignore=DL3008
RUN apt-get update \
    && grep -v '^#' /tmp/packages-runtime.txt | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/packages-runtime.txt
WORKDIR /opt/sohogw
COPY pyproject.toml README.md alembic.ini ./
COPY certs ./certs
COPY policy ./policy
COPY netfilter ./netfilter
COPY desktop_broker ./desktop_broker
COPY gateway ./gateway
RUN python3 -m venv .venv && .venv/bin/pip install --no-cache-dir . \
    && mkdir build && cc -O2 -o build/sohogw-seat-watermark desktop_broker/x11/watermark.c -lX11 -lXext
# Beside the installed package, where gateway/web/libraries.py looks (Debian 12's Python is 3.11).
COPY --from=web-libraries /opt/sohogw/gateway/web/npm/node_modules/chart.js/dist/chart.umd.min.js \
    /opt/sohogw/.venv/lib/python3.11/site-packages/gateway/web/npm/node_modules/chart.js/dist/
COPY --from=seat-viewer /opt/sohogw/deploy/seat-viewer/dist /opt/sohogw/seat-viewer
COPY --from=guacamole-lite /opt/sohogw/deploy/guacamole-lite/node_modules/guacamole-common-js/dist/esm \
    /opt/sohogw/guacamole-js
ENV PATH=/opt/sohogw/.venv/bin:$PATH \
    SOHOGW_DATA_DIR=/var/lib/sohogw \
    SOHOGW_SEATS__GUACAMOLE_JS_DIR=/opt/sohogw/guacamole-js \
    SOHOGW_SEATS__SEAT_VIEWER_DIR=/opt/sohogw/seat-viewer \
    SOHOGW_SEAT_WATERMARK=/opt/sohogw/build/sohogw-seat-watermark
VOLUME ["/var/lib/sohogw"]
EXPOSE 8080 51820/udp
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["curl", "--silent", "--fail", "--output", "/dev/null", "http://127.0.0.1:8080/healthz"]
CMD ["bash", "-c", "sohogw db upgrade && exec sohogw serve --host 0.0.0.0"]
