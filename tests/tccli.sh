#!/usr/bin/env bash
# Checks the simulator against the official client, tccli: if they disagree, the simulator is
# wrong. Not part of CI (it installs tccli from PyPI). Run from the repository root:
#   bash tests/tccli.sh
# LIGHTHOUSE_SHARE_BIN=target/debug/lighthouse-share skips the release build.
set -euo pipefail
venv=${TCCLI_VENV:-target/tccli-venv}
[ -x "$venv/bin/tccli" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q tccli-intl-en; }
bin=${LIGHTHOUSE_SHARE_BIN:-target/release/lighthouse-share}
[ -n "${LIGHTHOUSE_SHARE_BIN:-}" ] || cargo build --release -q
# A port free now; PORT overrides. (The CLI cannot report the port of --listen 127.0.0.1:0.)
port=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log=$(mktemp)
"$bin" simulate --listen "127.0.0.1:$port" 2>"$log" &
simulator=$!
trap 'kill $simulator 2>/dev/null || true; rm -f "$log"' EXIT
up=
for _ in $(seq 50); do
  kill -0 $simulator 2>/dev/null || break
  if curl -sf -m 1 "http://127.0.0.1:$port/__stats" >/dev/null; then up=1; break; fi
  sleep 0.1
done
[ -n "$up" ] || { echo "FAIL: the simulator did not start on 127.0.0.1:$port:"; cat "$log"; exit 1; }
export TENCENTCLOUD_SECRET_ID=AKIDsimulator TENCENTCLOUD_SECRET_KEY=simulator-secret-key
call() {
  "$venv/bin/tccli" lighthouse ModifyImageSharePermission --region ap-guangzhou \
    --ImageId img-abcdefgh --Permission SHARE --endpoint "http://127.0.0.1:$port" 2>&1 || true
}
first=$(call); echo "$first"
second=$(call); echo "$second"
grep -q '"BlueprintId": "lhbp-' <<<"$first" || { echo "FAIL: the first SHARE printed no BlueprintId"; exit 1; }
grep -q 'UnsupportedOperation.ImageAlreadyShared' <<<"$second" || { echo "FAIL: the second SHARE was not ImageAlreadyShared"; exit 1; }
blueprint=$(grep -o '"BlueprintId": "lhbp-[a-z0-9]*"' <<<"$first" | grep -o 'lhbp-[a-z0-9]*')
listed=$("$venv/bin/tccli" lighthouse DescribeBlueprints --region ap-guangzhou \
  --Filters '[{"Name": "blueprint-type", "Values": ["SHARED"]}]' --Limit 100 \
  --endpoint "http://127.0.0.1:$port" 2>&1 || true)
echo "$listed"
grep -q '"TotalCount": 1' <<<"$listed" || { echo "FAIL: DescribeBlueprints did not list the one shared image"; exit 1; }
grep -q "\"BlueprintId\": \"$blueprint\"" <<<"$listed" || { echo "FAIL: DescribeBlueprints did not answer the share's BlueprintId $blueprint"; exit 1; }
grep -q '"ImageId": "img-abcdefgh"' <<<"$listed" || { echo "FAIL: DescribeBlueprints did not name the shared image"; exit 1; }
echo "OK: tccli and the simulator agree"
