#!/usr/bin/env bash
# Builds the VM lab's disk image and kernel under build/vm/<hash>/ (disk.img, vmlinuz) and
# prints that directory. Debian's cloud kernel (it has IPVS, ext4 and NVMe built in) with its
# own modules copied into a debootstrap root, so `modprobe ip_vs` works in the VMs. <hash>
# covers every input (this script, the kernel's version, the host's Debian sources, the ssh
# key, the agent's dependency pins), so the ~2 min build runs only when one of them changes.
# The image also carries edgeagent's virtualenv with the agent's dependencies, installed here
# at native speed from the wheelhouse the edgeagent role sends to the nodes: pip installing
# and byte-compiling them inside an emulated VM takes 10-20 minutes. The role installs the
# agent itself into it, and would install any dependency that differs.
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly SUITE=bookworm
# The Debian mirror and sources the host's apt uses (lab/apt_sources.py): the VMs get them too.
SOURCES=$(python3 "$REPO/lab/apt_sources.py" sources "$SUITE")
MIRROR=$(python3 "$REPO/lab/apt_sources.py" mirror "$SUITE")
readonly SOURCES MIRROR
readonly IMAGE_SIZE=1536M
readonly AGENT_VENV=/opt/edgeagent/venv # edgeagent_install_dir/venv
readonly AGENT_LOCK=$REPO/roles/edgeagent/files/requirements-agent.lock
readonly AGENT_PINS=("$AGENT_LOCK" "$REPO/edgeagent/pyproject.toml")
# Everything the roles install, preinstalled: the VMs have no route to a registry.
# python3-cffi-backend: python3-cryptography needs it through virtual packages, which
# debootstrap does not resolve.
readonly PACKAGES=(
  systemd-sysv udev kmod dbus polkitd libpam-systemd openssh-server sudo netbase
  python3 python3-apt python3-venv python3-packaging python3-cryptography python3-cffi-backend
  iproute2 iputils-ping procps curl ca-certificates less tcpdump
  nginx-light libnginx-mod-http-lua lua-resty-core libnginx-mod-stream openssl keepalived ipvsadm
  libnginx-mod-http-set-misc
  nftables
)
# Timers that would wake up mid-test, and what a VM without a console or RTC does not need.
readonly MASKED_UNITS=(
  apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer man-db.timer
  systemd-timesyncd.service getty@tty1.service serial-getty@ttyS0.service
)

# The address comes from the kernel command line (`edge_vm.address=198.19.0.11/24
# edge_vm.gateway=198.19.0.1`): Debian's kernel has no `ip=`, and every VM shares the image.
read -r -d '' NETWORK_SCRIPT <<'SCRIPT' || true
#!/bin/sh
set -eu
for word in $(cat /proc/cmdline); do
  case $word in
    edge_vm.address=*) address=${word#*=} ;;
    edge_vm.gateway=*) gateway=${word#*=} ;;
  esac
done
# udev loads virtio_net: wait for eth0 rather than order after udev-settle (deprecated).
for _ in $(seq 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set lo up
ip link set eth0 up
ip address replace "$address" dev eth0
ip route replace default via "$gateway"
SCRIPT
readonly NETWORK_SCRIPT
readonly NETWORK_UNIT='[Unit]
Description=Address of this VM from the kernel command line
Before=network.target ssh.service
Wants=network.target
DefaultDependencies=no
After=systemd-udev-trigger.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/edge-vm-network

[Install]
WantedBy=multi-user.target'

kernel_package() { # the cloud kernel package the metapackage depends on, e.g. linux-image-6.1.0-56-cloud-amd64
  apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ { print $2; exit }'
}

mkdir -p "$VM_BUILD_DIR"
exec 9>"$VM_BUILD_DIR/image.lock"
flock 9

if [[ ! -f $VM_SSH_KEY ]]; then
  mkdir -p "$(dirname "$VM_SSH_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C edge-vm-lab -f "$VM_SSH_KEY"
fi
package=$(kernel_package)
[[ -n $package ]] || {
  echo "apt-cache knows no linux-image-cloud-amd64; run apt-get update" >&2
  exit 1
}
inputs_hash=$(
  {
    cat "$0" "$REPO/lab/apt_sources.py" "$VM_SSH_KEY.pub" "${AGENT_PINS[@]}"
    echo "$SOURCES"
    echo "$package"
  } |
    sha256sum | cut -c1-12
)
readonly OUT=$VM_BUILD_DIR/$inputs_hash
if [[ -f $OUT/disk.img && -f $OUT/vmlinuz ]]; then
  echo "$OUT"
  exit 0
fi

log "building the VM image $OUT (debootstrap $SUITE + $package, about 1.5 min)" >&2
started=$SECONDS
work=$(mktemp -d /var/tmp/edge-vm-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$package" >/dev/null)
dpkg -x "$work"/"$package"_*.deb "$work/kernel"
kernel_version=${package#linux-image-}

debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }

modules=$(find "$work/kernel" -type d -path "*/lib/modules/$kernel_version" | head -1)
mkdir -p "$root/usr/lib/modules" # merged /usr: /lib is a symlink to it
cp -a "$modules" "$root/usr/lib/modules/"
chroot "$root" depmod -a "$kernel_version"
rm -f "$root/etc/apt/sources.list"
printf '%s\n' "$SOURCES" >"$root/etc/apt/sources.list.d/debian.sources"
printf '%s\n' "$NETWORK_SCRIPT" >"$root/usr/local/sbin/edge-vm-network"
chmod 0755 "$root/usr/local/sbin/edge-vm-network"
printf '%s\n' "$NETWORK_UNIT" >"$root/etc/systemd/system/edge-vm-network.service"
systemctl --root="$root" enable edge-vm-network.service >/dev/null 2>&1
systemctl --root="$root" mask "${MASKED_UNITS[@]}" >/dev/null 2>&1
systemctl --root="$root" set-default multi-user.target >/dev/null 2>&1
echo '/dev/nvme0n1 / ext4 rw,noatime 0 0' >"$root/etc/fstab"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$VM_SSH_KEY.pub" "$root/root/.ssh/authorized_keys"
# Logins are the slowest part of an Ansible task under emulation: no DNS lookup, and no PAM
# session (pam_systemd would start a systemd user manager for root: 10-20 s here).
printf 'UseDNS no\nUsePAM no\n' >"$root/etc/ssh/sshd_config.d/edge-vm.conf"
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' \
  >"$root/etc/systemd/journald.conf.d/edge-vm.conf"
: >"$root/etc/machine-id" # a fresh one per boot: every VM runs a throw-away copy
chroot "$root" apt-get clean
# Empty lists: a role's apt task that finds something missing must update them.
rm -rf "$root"/var/lib/apt/lists/*

# The edgeagent role's own wheelhouse build (the same wheels the nodes get), every wheel but
# the agent's.
wheelhouse=$("$VENV_BIN/python" "$REPO/roles/edgeagent/files/build_wheelhouse.py" \
  --source "$REPO/edgeagent" --wheelhouse "$REPO/build/wheelhouse" \
  --lock "$AGENT_LOCK" --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 2>"$work/wheelhouse.log" |
  "$VENV_BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["path"])') ||
  { tail -20 "$work/wheelhouse.log" >&2; exit 1; }
mkdir -p "$root/tmp/wheels"
find "$wheelhouse" -name '*.whl' ! -name 'edgeagent-*' -exec cp {} "$root/tmp/wheels/" \;
chroot "$root" python3 -m venv "$AGENT_VENV"
chroot "$root" sh -c "$AGENT_VENV/bin/pip install -q --no-index --no-deps /tmp/wheels/*.whl"
rm -rf "$root/tmp/wheels"

mkdir -p "$work/out"
cp "$work/kernel/boot/vmlinuz-$kernel_version" "$work/out/vmlinuz"
mkfs.ext4 -q -L vmroot -d "$root" "$work/out/disk.img" "$IMAGE_SIZE" >/dev/null
rm -rf "$OUT"
mv "$work/out" "$OUT"
# Drop the builds of earlier inputs.
find "$VM_BUILD_DIR" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
  -regex '.*/[0-9a-f]{12}' \
  ! -path "$OUT" -exec rm -rf {} +
log "built $OUT in $((SECONDS - started)) s" >&2
echo "$OUT"
