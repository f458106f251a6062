#!/usr/bin/env bash
# Builds the systemd node image `edge-node:<hash>` (also tagged `latest`) used by the lab and
# molecule, without any registry: debootstrap -> docker import -> a 3-line build that adds the
# stop signal (docker import rejects STOPSIGNAL). `lab/image.sh trixie` builds the Debian 13
# image `edge-node-trixie:<hash>` (and `latest`) the same way; Debian 12 (bookworm) is the
# default. <hash> covers every input (these scripts, the
# host's Debian sources and CA bundle), so the ~75 s build runs only when one of them changes.
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly SUITE=${1:-bookworm}
# The image's name and the nginx package the nginx role installs there (its vars/Debian-*.yml).
case $SUITE in
  bookworm) readonly IMAGE=$NODE_IMAGE NGINX_PACKAGE=nginx-light ;;
  trixie) readonly IMAGE=$NODE_IMAGE-trixie NGINX_PACKAGE=nginx ;;
  *) echo "lab/image.sh: no node image for suite '$SUITE' (bookworm or trixie)" >&2; exit 2 ;;
esac
# The Debian mirror and sources the host's apt uses (lab/apt_sources.py): the node gets them too.
# A release the host's apt does not name gets the host's own sources with the suite renamed.
HOST_SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
SOURCES=$(python3 "$REPO/lab/apt_sources.py" sources "$SUITE" --like "$HOST_SUITE")
MIRROR=$(python3 "$REPO/lab/apt_sources.py" mirror "$SUITE" --like "$HOST_SUITE")
MIRROR_HOST=$(sed -E 's#^[a-z+]+://([^/:]+).*#\1#' <<<"$MIRROR")
readonly HOST_SUITE SOURCES MIRROR MIRROR_HOST
readonly HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
readonly EXTRA_CAS=$REPO/lab/extra_ca_certificates.py
# What every node needs to be provisioned quickly and mostly offline. The roles still install
# what they use (nginx-light, keepalived, ...); preinstalled, those tasks find them present.
# libpam-systemd provides default-logind: polkitd needs it and debootstrap does not resolve it;
# likewise python3-cffi-backend, which python3-cryptography needs through virtual packages.
readonly PACKAGES=(
  systemd systemd-sysv dbus polkitd libpam-systemd
  python3 python3-apt python3-venv python3-packaging python3-cryptography python3-cffi-backend sudo
  iproute2 iputils-ping procps curl ca-certificates less
  "$NGINX_PACKAGE" libnginx-mod-http-lua lua-resty-core libnginx-mod-stream openssl keepalived ipvsadm
  libnginx-mod-http-set-misc
  nftables
)
# Units that need hardware, a console or a writable kernel interface a container lacks.
readonly MASKED_UNITS=(
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-modules-load.service systemd-remount-fs.service systemd-firstboot.service
  systemd-logind.service systemd-timesyncd.service getty.target console-getty.service
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount
  apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer
)

inputs_hash=$(
  { cat "$0" "$REPO/lab/apt_sources.py" "$EXTRA_CAS" "$HOST_CA_BUNDLE"; echo "$SOURCES"; } |
    sha256sum | cut -c1-12
)
readonly TAG=$IMAGE:$inputs_hash BASE_TAG=$IMAGE-base:$inputs_hash

mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/image-$SUITE.lock" # the lab and molecule may ask at the same time
flock 9

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  "$DOCKER" tag "$TAG" "$IMAGE:latest"
  exit 0
fi

# debootstrap fetches from the Debian mirror; a Docker network whose subnet covers the
# mirror's address (on some machines it resolves into 203.0.113.0/24) captures the route to it.
registry=$(getent ahostsv4 "$MIRROR_HOST" | awk 'NR == 1 { print $1 }')
if [[ -n $registry ]]; then
  device=$(ip -o route get "$registry" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  if [[ -d /sys/class/net/$device/bridge ]]; then
    echo "the Debian mirror $MIRROR_HOST ($registry) is routed into bridge $device:" >&2
    echo "a Docker network's subnet covers it; remove that network, then retry" >&2
    exit 1
  fi
fi

log "building $TAG (debootstrap $SUITE, about a minute)"
started=$SECONDS
root=$(mktemp -d /var/tmp/edge-node-root.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  "$SUITE" "$root" "$MIRROR" >"$STATE_DIR/debootstrap-$SUITE.log" 2>&1 ||
  { tail -20 "$STATE_DIR/debootstrap-$SUITE.log" >&2; exit 1; }

rm -f "$root/etc/apt/sources.list"
printf '%s\n' "$SOURCES" >"$root/etc/apt/sources.list.d/debian.sources"
systemctl --root="$root" mask "${MASKED_UNITS[@]}" >/dev/null 2>&1
systemctl --root="$root" set-default multi-user.target >/dev/null 2>&1
python3 "$EXTRA_CAS" "$HOST_CA_BUNDLE" "$root" >/dev/null
chroot "$root" update-ca-certificates >/dev/null 2>&1
: >"$root/etc/machine-id" # systemd makes a fresh one at every container start
chroot "$root" apt-get clean
# Empty lists: a role's first apt task must update them (stale lists name removed versions).
rm -rf "$root"/var/lib/apt/lists/*

tar -C "$root" -c . | "$DOCKER" import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' - "$BASE_TAG" >/dev/null
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nCMD ["/lib/systemd/systemd"]\n' "$BASE_TAG" |
  DOCKER_BUILDKIT=0 "$DOCKER" build --pull=false -q \
    --label "org.example.edge.inputs-hash=$inputs_hash" -t "$TAG" - >/dev/null
"$DOCKER" tag "$TAG" "$IMAGE:latest"

# Drop images of earlier inputs of this suite (the other suite's image has its own name); one
# still used by a container stays until that is removed.
{ "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "$IMAGE"
  "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "$IMAGE-base"; } |
  grep -vxF -e "$TAG" -e "$BASE_TAG" -e "$IMAGE:latest" |
  xargs -r "$DOCKER" rmi >/dev/null 2>&1 || true

size=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
log "built $TAG in $((SECONDS - started)) s, $((size / 1000000)) MB"
