#!/usr/bin/env bash
# One VM of the VM lab: QEMU in the namespace edge-vm, its disk a copy-on-write overlay of the
# shared read-only image (kept until vm-lab-down, so a VM powered off and on again comes back
# as it was, like a real node after a power cut), its address on the kernel command line.
#   vm.sh start NAME ADDRESS IMAGE_DIR   boot it (no-op when it runs); power on after poweroff
#   vm.sh wait NAME ADDRESS SECONDS      wait until its sshd answers
#   vm.sh poweroff NAME                  pull the plug: SIGKILL to QEMU (the drill's fault)
#   vm.sh poweron NAME                   start it again at its address (no-op when it runs)
#   vm.sh accel IMAGE_DIR                print kvm or tcg (probed once, then remembered)
set -euo pipefail
source "$(dirname "$0")/common.sh"

readonly MEMORY_MB=384
readonly KVM_PROBE_SECONDS=5

pidfile() { echo "$VM_STATE_DIR/$1.pid"; }

running_pid() {
  local pid
  pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *qemu-system*"-name $1 "* ]] || return 1
  echo "$pid"
}

# KVM is used only if it boots a kernel: on some hosts /dev/kvm exists and guests hang at
# kernel entry. The probe boots the lab's kernel without a disk and looks for its banner.
accel() {
  local image_dir=$1 cache=$VM_STATE_DIR/accel console
  if [[ -f $cache ]]; then
    cat "$cache"
    return
  fi
  mkdir -p "$VM_STATE_DIR"
  local result=tcg
  if [[ -r /dev/kvm && -w /dev/kvm ]]; then
    console=$VM_STATE_DIR/kvm-probe.console
    rm -f "$console"
    # In a subshell that outlives it (`; true`), which reports a QEMU killed by SIGABRT (a
    # failing KVM) to /dev/null instead of the terminal.
    (timeout "$KVM_PROBE_SECONDS" qemu-system-x86_64 -accel kvm -cpu host -m 128 -no-reboot \
      -kernel "$image_dir/vmlinuz" -append "console=ttyS0 panic=-1" \
      -display none -monitor none -serial "file:$console" >/dev/null 2>&1; true) 2>/dev/null
    grep -q 'Linux version' "$console" 2>/dev/null && result=kvm
  fi
  echo "$result" >"$cache"
  log "VM accelerator: $result" >&2
  echo "$result"
}

start() {
  local name=$1 address=$2 image_dir=$3 accel_args last_octet cmdline
  if running_pid "$name" >/dev/null; then
    return
  fi
  case $(accel "$image_dir") in
    kvm) accel_args=(-accel kvm -cpu host) ;;
    # tb-size 128: each VM stays near 360 MB instead of 1 GB of translation cache. -cpu max:
    # AES, SSE4 and the like run as native helpers instead of emulated fallback code (ssh,
    # Python).
    *) accel_args=(-accel "tcg,thread=multi,tb-size=128" -cpu max) ;;
  esac
  last_octet=${address##*.}
  # The disk is emulated by the same starved host threads as the CPU: under TCG on a busy
  # host an I/O can wait longer than the guest driver's 30 s, which then aborts it, fails
  # the writes and remounts / read-only (clean-clone run 29, docs/lab.md). A slow lab disk
  # is not a dead one: the timeouts are an hour. loglevel 5 keeps the driver's warnings
  # (timeouts, resets) in the console file, the evidence when a VM's disk fails anyway.
  cmdline="root=/dev/nvme0n1 rw console=ttyS0 net.ifnames=0 loglevel=5 fsck.mode=skip panic=1"
  cmdline+=" nvme_core.io_timeout=3600 nvme_core.admin_timeout=3600"
  cmdline+=" systemd.hostname=$name edge_vm.address=$address/$VM_PREFIX"
  cmdline+=" edge_vm.gateway=$VM_HOST_ADDRESS"
  "$REPO/lab/vm/net.sh" tap "tap-$name"
  rm -f "$VM_STATE_DIR/$name.console"
  # The image's path and format are recorded in the overlay: a new image needs vm-lab-down.
  [[ -f $VM_STATE_DIR/$name.qcow2 ]] ||
    qemu-img create -q -f qcow2 -F raw -b "$image_dir/disk.img" "$VM_STATE_DIR/$name.qcow2"
  ip netns exec "$VM_NETNS" qemu-system-x86_64 -name "$name" "${accel_args[@]}" \
    -smp 1 -m "$MEMORY_MB" -kernel "$image_dir/vmlinuz" \
    -append "$cmdline" \
    -drive "file=$VM_STATE_DIR/$name.qcow2,if=none,id=disk0,format=qcow2" \
    -device nvme,drive=disk0,serial="$name" \
    -netdev "tap,id=net0,ifname=tap-$name,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=net0,mac=$(printf '52:54:00:c6:13:%02x' "$last_octet")" \
    -display none -monitor none -serial "file:$VM_STATE_DIR/$name.console" \
    -pidfile "$(pidfile "$name")" -daemonize 7>&- 8>&- 9>&-
}

wait_ssh() {
  local name=$1 address=$2 deadline=$((SECONDS + $3))
  until ssh -q -i "$VM_SSH_KEY" -o BatchMode=yes -o ConnectTimeout=3 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "root@$address" true 2>/dev/null; do
    if ! running_pid "$name" >/dev/null; then
      echo "$name: QEMU exited; console:" >&2
      tail -20 "$VM_STATE_DIR/$name.console" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "$name ($address): no ssh after $3 s; console:" >&2
      tail -20 "$VM_STATE_DIR/$name.console" >&2
      exit 1
    fi
    sleep 1
  done
}

poweroff() {
  local pid
  if pid=$(running_pid "$1"); then
    kill -KILL "$pid"
  fi
  rm -f "$(pidfile "$1")"
}

case ${1:-} in
  start) start "$2" "$3" "$4" ;;
  wait) wait_ssh "$2" "$3" "$4" ;;
  poweroff) poweroff "$2" ;;
  poweron) start "$2" "${VM_ADDRESSES[$2]}" "$("$REPO/lab/vm/image.sh")" ;;
  accel) accel "$2" ;;
  *)
    echo "usage: $0 start NAME ADDRESS IMAGE_DIR | wait NAME ADDRESS SECONDS" \
      "| poweroff NAME | poweron NAME | accel IMAGE_DIR" >&2
    exit 2
    ;;
esac
