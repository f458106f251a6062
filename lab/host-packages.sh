#!/usr/bin/env bash
# Installs the Debian packages the repository needs on the host, only those that are missing:
# a no-op (one dpkg-query) when everything is present, `apt-get update` only when not.
# Every external tool a make target calls comes from this list or from Debian's essential set
# (coreutils, util-linux: flock, nsenter, setsid; grep, sed, mawk, tar):
#   docker.io, debootstrap      the lab and molecule (node image, containers)
#   nftables                    `make drill` on the lab: the partition fault runs nft in the
#                               VIP holder's network namespace from this machine (nsenter)
#   openssh-client              the VM lab and molecule -s lvs: ssh into the VMs, ssh-keygen
#   e2fsprogs                   the VM lab's disk image (mkfs.ext4 -d)
#   git                         `make bench` records the commit it measured
#   nginx-light + lua modules   `nginx -t` in the agent's tests, the same build as on the nodes
#   libnginx-mod-stream         the stream module (ssl_preread) of TLS passthrough, in those tests
#   libnginx-mod-http-set-misc  set_escape_uri, auth-signin's $escaped_request_uri, in those tests
#   keepalived, ipvsadm         `keepalived --config-test` in role tests
#   openssl, curl, iproute2     test certificates, the lab's checks, addresses
#   sslscan                     the listeners' TLS as a client sees it (playbooks/tests)
#   python3-venv                `make setup` creates .venv/ with it
#   wrk                         the load tool of `make bench` (proxy_throughput_ratio)
#   haproxy, nghttp2-client     `make bench`'s side by side: HAProxy as the peer, h2load
#                               (--rps) for the latency at a fixed rate
#   prometheus                  promtool, which checks and tests the shipped alert rules
#   qemu-system-x86, qemu-utils the VM lab and molecule -s lvs (real LVS on Debian's kernel)
#   frr                         bgpd, vtysh and frr-reload.py for the frr role's tests (BGP
#                               between network namespaces, each with its own pathspace)
#   strace, linux-perf          bench/cpu_per_request.py: system calls and hottest functions
#                               per proxied request, for the side by side's account
set -euo pipefail

readonly PACKAGES=(
  docker.io debootstrap nftables openssh-client e2fsprogs git
  nginx-light libnginx-mod-http-lua lua-resty-core libnginx-mod-stream libnginx-mod-http-set-misc
  keepalived ipvsadm
  openssl curl iproute2 sslscan python3-venv wrk prometheus haproxy nghttp2-client
  qemu-system-x86 qemu-utils
  frr
  strace linux-perf
)

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

echo "installing host packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The host needs the nginx binary for tests, not a web server on its port 80: on a host booted
# with systemd the package would start one. The same for prometheus (promtool is what is
# needed) and haproxy (the bench starts its own).
if [[ " ${missing[*]} " == *" nginx-light "* && -d /run/systemd/system ]]; then
  systemctl disable --now nginx.service
fi
if [[ " ${missing[*]} " == *" prometheus "* && -d /run/systemd/system ]]; then
  systemctl disable --now prometheus.service
fi
# The tests run bgpd in their own network namespaces (-N); a system-wide FRR on the host would
# only hold the BGP port and the default pathspace. Debian starts it on install.
if [[ " ${missing[*]} " == *" frr "* ]]; then
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now frr.service
  else
    service frr stop >/dev/null 2>&1 || true
    update-rc.d frr disable >/dev/null
  fi
fi
if [[ " ${missing[*]} " == *" haproxy "* && -d /run/systemd/system ]]; then
  systemctl disable --now haproxy.service
fi
