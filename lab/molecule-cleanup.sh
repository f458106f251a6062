#!/usr/bin/env bash
# Removes what an earlier, interrupted molecule run left behind (containers, the network, the
# API emulator on the host), so `make molecule` starts clean. Only what carries molecule's
# label: a running lab is left alone. Idempotent.
set -euo pipefail
source "$(dirname "$0")/common.sh"

if "$DOCKER" info >/dev/null 2>&1; then
  "$DOCKER" ps -aq --filter "label=$MOLECULE_LABEL" | xargs -r "$DOCKER" rm -f >/dev/null
  "$DOCKER" network ls -q --filter "label=$MOLECULE_LABEL" |
    xargs -r "$DOCKER" network rm >/dev/null
fi
"$REPO/lab/emulator.sh" stop molecule
# molecule -s lvs: the VMs, their namespaces, taps and veth, the backends and the emulator.
"$REPO/lab/vm/down.sh" >/dev/null
