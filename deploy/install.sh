#!/usr/bin/env bash
# Install, upgrade or remove kubensage on a VM or bare-metal host (systemd).
#
#   install.sh agent --bundle kubensage-agent-0.1.0-linux-amd64.tar.gz --relay-address relay:9190
#   install.sh relay --bundle kubensage-relay-0.1.0-linux-amd64.tar.gz
#   install.sh agent --uninstall [--purge]
#
# Options: --bundle PATH (a .tar.gz from `make build` or its unpacked folder),
# --relay-address HOST:PORT (agent), --root DIR (install below DIR instead of /, for
# images and tests), --no-systemctl (do not call systemctl), --uninstall, --purge
# (with --uninstall: also delete /etc/kubensage and /var/lib/kubensage; check scripts
# in /etc/kubensage/checks.d are kept).
# Running it again with the same arguments changes nothing; the agent id is never replaced.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
PROGRAM="$1"; shift
case "$PROGRAM" in agent|relay) ;; *) usage ;; esac

BUNDLE=""; RELAY_ADDRESS=""; ROOT="/"; SYSTEMCTL=1; UNINSTALL=0; PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="$2"; shift 2 ;;
    --relay-address) RELAY_ADDRESS="$2"; shift 2 ;;
    --root) ROOT="$2"; shift 2 ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
NAME="kubensage-$PROGRAM"
OPT="$ROOT/opt/kubensage/$PROGRAM"
BIN_LINK="$ROOT/usr/local/bin/$NAME"
UNIT="$ROOT/etc/systemd/system/$NAME.service"
CONFIG_DIR="$ROOT/etc/kubensage"
CONFIG="$CONFIG_DIR/$PROGRAM.yaml"
STATE="$ROOT/var/lib/kubensage"

systemd_running() { [ "$SYSTEMCTL" = 1 ] && [ -d /run/systemd/system ]; }

if [ "$UNINSTALL" = 1 ]; then
  if systemd_running; then
    systemctl disable --now "$NAME.service" 2>/dev/null || true
  fi
  rm -f "$UNIT" "$BIN_LINK"
  rm -rf "$OPT"
  systemd_running && systemctl daemon-reload
  if [ "$PURGE" = 1 ]; then
    rm -f "$CONFIG"
    if [ "$PROGRAM" = agent ]; then
      rm -rf "$STATE"
      rmdir "$CONFIG_DIR/checks.d" 2>/dev/null || true
    fi
    rmdir "$CONFIG_DIR" 2>/dev/null || true
  fi
  echo "$NAME removed"
  exit 0
fi

[ -n "$BUNDLE" ] || { echo "--bundle is required" >&2; exit 2; }
[ -e "$BUNDLE" ] || { echo "bundle $BUNDLE not found" >&2; exit 2; }

# 1. the program: unpack into a fresh folder, then swap it in
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
if [ -d "$BUNDLE" ]; then
  cp -a "$BUNDLE/." "$STAGE/"
else
  tar -xzf "$BUNDLE" -C "$STAGE" --strip-components=1
fi
[ -x "$STAGE/$NAME" ] || { echo "$BUNDLE holds no $NAME executable" >&2; exit 2; }
mkdir -p "$(dirname "$OPT")" "$(dirname "$BIN_LINK")"
if [ -d "$OPT" ] && diff -rq "$STAGE" "$OPT" >/dev/null 2>&1; then
  echo "$NAME already at this version"
else
  rm -rf "$OPT.new" && cp -a "$STAGE" "$OPT.new" && rm -rf "$OPT" && mv "$OPT.new" "$OPT"
  echo "installed $NAME into ${OPT#"$ROOT"}"
fi
ln -sfn "/opt/kubensage/$PROGRAM/$NAME" "$BIN_LINK"

# 2. configuration: written once; --relay-address updates that one key
mkdir -p "$CONFIG_DIR"
if [ "$PROGRAM" = agent ]; then
  if [ ! -f "$CONFIG" ]; then
    [ -n "$RELAY_ADDRESS" ] || { echo "--relay-address is required on first install" >&2; exit 2; }
    cat > "$CONFIG" <<YAML
# kubensage-agent settings; keys are the flag names (kubensage-agent run --help).
relay-address: $RELAY_ADDRESS
state-dir: /var/lib/kubensage
spool: true
interval: 10
health-address: 127.0.0.1:9192
log-format: json
YAML
  elif [ -n "$RELAY_ADDRESS" ]; then
    sed -i "s|^relay-address:.*|relay-address: $RELAY_ADDRESS|" "$CONFIG"
  fi
  # check scripts: the agent runs only root-owned files in a root-owned directory that
  # neither group nor others may write
  install -d -m 0755 "$CONFIG_DIR/checks.d"
  [ "$(id -u)" -ne 0 ] || chown root:root "$CONFIG_DIR/checks.d"
  # 3. identity: created once, never replaced (pre-provisioned ids are kept too)
  mkdir -p "$STATE"
  chmod 0750 "$STATE"
  if [ ! -s "$STATE/agent-id" ]; then
    cat /proc/sys/kernel/random/uuid > "$STATE/agent-id"
  fi
elif [ ! -f "$CONFIG" ]; then
  cat > "$CONFIG" <<YAML
# kubensage-relay settings; keys are the flag names (kubensage-relay serve --help).
listen-address: 0.0.0.0:9190
metrics-address: 0.0.0.0:9191
log-format: json
# Plaintext gRPC off loopback needs this; prefer tls-cert-file/tls-key-file instead.
# Bind reports to nodes with token-file (lines "TOKEN node-name") or tls-client-ca-file:
# without either, any host that reaches this port can report as any node.
insecure: true
YAML
fi

# 4. the unit
mkdir -p "$(dirname "$UNIT")"
install -m 0644 "$HERE/systemd/$NAME.service" "$UNIT"
if systemd_running; then
  systemctl daemon-reload
  systemctl enable "$NAME.service"
  systemctl restart "$NAME.service"
  echo "$NAME enabled and (re)started"
else
  echo "systemd not in use here: unit written to ${UNIT#"$ROOT"}, not started"
fi
