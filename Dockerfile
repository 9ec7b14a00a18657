# The OpenClaw Gateway (Twisted) in a container: non-root, listening on all interfaces,
# token from the environment, state on a volume. See docs/docker.md.
#
#   docker build -t openclaw-gateway .
#   docker run -d --name openclaw -p 18789:18789 \
#     -e OPENCLAW_GATEWAY_TOKEN="$(openssl rand -hex 32)" -v openclaw-data:/data openclaw-gateway
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OPENCLAW_STATE_DIR=/data \
    OPENCLAW_GATEWAY_PORT=18789

RUN groupadd --system --gid 10001 openclaw \
 && useradd --system --uid 10001 --gid openclaw --home-dir /data --shell /usr/sbin/nologin openclaw \
 && mkdir -p /data && chown openclaw:openclaw /data && chmod 700 /data

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY openclaw ./openclaw
COPY twisted ./twisted
RUN pip install --no-compile . && rm -rf /app

USER openclaw
WORKDIR /data
VOLUME ["/data"]
# gateway (HTTP + WebSocket), node bridge, canvas host
EXPOSE 18789 18790 18793

# /health answers without auth while the gateway serves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('OPENCLAW_GATEWAY_PORT', '18789'), timeout=4)"]

# bind lan (0.0.0.0): the gateway refuses to start like that without a token or password,
# so pass OPENCLAW_GATEWAY_TOKEN (or mount a config with gateway.auth) when you run it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["openclaw"]
CMD ["gateway", "run", "--bind", "lan", "--allow-unconfigured"]
