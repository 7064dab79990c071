#!/usr/bin/env bash
# The slow deploy check (minutes: the release build, apt, the cloud's npm ci): applies
# deploy/ansible/site.yml for real, sensor and cloud, against a disposable Debian root on this
# machine, the way a fleet is deployed: the controller (this machine) builds the release
# tarballs once, the hosts get them and a pinned Node.js tarball copied over, nothing else.
# Then:
#   - a second apply must change nothing (changed=0 on both hosts);
#   - the sensor is updated to a newer release (the previous one is kept), then to a release
#     whose daemon exits at start: its settle check fails and the playbook switches `current`
#     back to the previous release by itself, removes the failed one and fails the host;
#   - one more release: only the last 2 are kept;
#   - test/deploy/applied-root.test.ts checks what is left and runs the installed units.
# Node.js: the official tarball cannot be downloaded here, so the test packs this machine's
# node (bin/, include/, lib/node_modules/npm: the official layout) into
# node-v<version>-linux-<arch>.tar.xz and pins its sha256 the same way.
#
# The target is an overlay of this machine's own root filesystem (writes go to a temp dir),
# entered by Ansible's chroot connection, in a private mount namespace so nothing leaks if the
# script dies. systemd is not PID 1 in there, so the roles install and enable the units but
# skip starting them (that path is taken on a real Pi). Needs root and overlayfs.
#
#   scripts/deploy-apply-test.sh            # apply twice (the second run must change nothing) and verify
#   KEEP_ROOT=1 scripts/deploy-apply-test.sh  # leave the temp dir for inspection
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ "$(id -u)" != 0 ]; then
  echo "deploy-apply-test: needs root (overlay mount + chroot); try: sudo $0" >&2
  exit 2
fi
# Re-enter in a private mount namespace: every mount below disappears with this process.
if [ -z "${SW_APPLY_IN_NS:-}" ]; then
  exec env SW_APPLY_IN_NS=1 unshare --mount --propagation private -- "$0" "$@"
fi

# SW_APPLY_WORK=<a dir kept by KEEP_ROOT=1>: apply again on top of that target (fast re-runs
# while editing the roles: node_modules is already built there).
if [ -n "${SW_APPLY_WORK:-}" ]; then work="$SW_APPLY_WORK"; KEEP_ROOT=1; else work="$(mktemp -d /tmp/sw-deploy-apply.XXXXXX)"; fi
root="$work/root"
cleanup() {
  local status=$?
  umount -R "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true
  if [ -n "${KEEP_ROOT:-}" ]; then echo "deploy-apply-test: kept $work (upper layer: $work/upper)"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
mkdir -p "$work/upper" "$work/ovl-work" "$root"

mount -t overlay sw-target -o "lowerdir=/,upperdir=$work/upper,workdir=$work/ovl-work" "$root" ||
  { echo "deploy-apply-test: overlayfs mount failed (needs CAP_SYS_ADMIN and overlay support)" >&2; exit 2; }
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
# A fresh /run (no /run/systemd/system: Ansible sees no running systemd) and /tmp.
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
# A fresh target: nothing of an earlier Screamwatch install on this machine shows through.
[ -n "${SW_APPLY_WORK:-}" ] || rm -rf "$root/opt/screamwatch" "$root/etc/screamwatch" "$root/var/lib/screamwatch" \
  "$root/etc/systemd/system/screamwatch-"*.service \
  "$root/etc/systemd/system/multi-user.target.wants/screamwatch-"*.service
if [ -z "${SW_APPLY_WORK:-}" ] && chroot "$root" id screamwatch >/dev/null 2>&1; then chroot "$root" userdel screamwatch; fi

version="$(node -p "require('$repo/package.json').version")"
arch="$(node -p process.arch)"
release_dir="$work/release"
mkdir -p "$release_dir" "$work/files"
node_version="$(node -p process.versions.node)"
node_name="node-v$node_version-linux-$arch"
if [ ! -f "$work/files/$node_name.tar.xz" ]; then
  echo "deploy-apply-test: packing this machine's node as $node_name.tar.xz"
  t="$work/node-pack/$node_name"
  mkdir -p "$t/bin" "$t/include" "$t/lib/node_modules"
  cp "$(readlink -f "$(command -v node)")" "$t/bin/node"
  cp -a "$(dirname "$(readlink -f "$(command -v node)")")/../include/node" "$t/include/node"
  cp -a "$(npm root -g)/npm" "$t/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$t/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$t/bin/npx"
  tar -I 'xz -T0 -1' -cf "$work/files/$node_name.tar.xz" -C "$work/node-pack" "$node_name"
  rm -rf "$work/node-pack"
fi
node_sha256="$(sha256sum "$work/files/$node_name.tar.xz" | cut -d' ' -f1)"
inventory="$work/inventory"
mkdir -p "$inventory/group_vars/all"
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
if [ -f "$work/secrets.env" ]; then
  . "$work/secrets.env"
else
  sensor_password="$(secret)"
  admin_password="$(secret)"
  session_secret="$(secret)$(secret)"
  admin_hash="$(printf '%s' "$admin_password" | (cd "$repo" && node --import tsx cloud/main.ts hash-password))"
  # The broker's TLS port, fixed at deploy time like 8883 in production.
  tls_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  printf "sensor_password='%s'\nadmin_password='%s'\nsession_secret='%s'\nadmin_hash='%s'\ntls_port='%s'\n" \
    "$sensor_password" "$admin_password" "$session_secret" "$admin_hash" "$tls_port" >"$work/secrets.env"
fi
# A self-signed broker certificate: the cloud gets cert + key, the sensors trust it as their CA.
if [ ! -f "$work/tls/cert.pem" ]; then
  mkdir -p "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null
fi
cat >"$inventory/hosts.yml" <<YAML
all:
  vars:
    screamwatch_release_dir: $release_dir
    screamwatch_node_version: "$node_version"
    screamwatch_node_sha256: {$arch: $node_sha256}
    screamwatch_node_tarball_dir: $work/files
    sensor_settle_seconds: 5
  children:
    cloud:
      vars:
        ansible_connection: community.general.chroot
        ansible_host: $root
      hosts:
        cloud-under-test:
          cloud_web_public_url: https://cloud.test.invalid
          cloud_mqtt_tls_port: $tls_port
          cloud_mqtt_tls_cert_pem: "{{ lookup('ansible.builtin.file', '$work/tls/cert.pem') }}"
    sensors:
      vars:
        ansible_connection: community.general.chroot
        ansible_host: $root
        sensor_mqtt_url: mqtts://localhost:$tls_port
        sensor_mqtt_ca_pem: "{{ lookup('ansible.builtin.file', '$work/tls/cert.pem') }}"
      hosts:
        pi-under-test:
          sensor_id: apply-1
          sensor_room: Test bench
          sensor_latitude: 52.0907
          sensor_longitude: 5.1214
          sensor_accuracy: 5
          sensor_address: "1 Example Street, Utrecht: the \"bench\""
          sensor_alsa_device: plughw:CARD=Device,DEV=0
YAML
# A real vault, encrypted, as the README tells users to do.
cat >"$inventory/group_vars/all/vault.yml" <<YAML
vault_sensor_mqtt_passwords:
  apply-1: "$sensor_password"
vault_cloud_session_secret: "$session_secret"
vault_cloud_web_users:
  - username: admin
    passwordHash: "$admin_hash"
    role: admin
vault_cloud_mqtt_tls_key_pem: |
$(sed 's/^/  /' "$work/tls/key.pem")
YAML
[ -f "$work/vault-pass" ] || secret >"$work/vault-pass"
ansible-vault encrypt --vault-password-file "$work/vault-pass" "$inventory/group_vars/all/vault.yml" >/dev/null

cd "$repo/deploy/ansible"
playbook() {
  ANSIBLE_CONFIG="$repo/deploy/ansible/ansible.cfg" \
    ansible-playbook -i "$inventory/hosts.yml" --vault-password-file "$work/vault-pass" site.yml "$@"
}
fail() { echo "deploy-apply-test: FAIL: $*" >&2; exit 1; }
current() { readlink "$root/opt/screamwatch/current"; }
# A copy of the built daemon release under another version; "broken": its daemon exits at start.
repack() {
  local v="$1" kind="${2:-}" t="$work/repack"
  local from="screamwatch-daemon-$version-linux-$arch" to="screamwatch-daemon-$v-linux-$arch"
  rm -rf "$t" && mkdir -p "$t"
  tar -xzf "$release_dir/$from.tar.gz" -C "$t"
  mv "$t/$from" "$t/$to"
  node -e 'const fs = require("fs"); const [f, v] = process.argv.slice(1); const p = JSON.parse(fs.readFileSync(f)); p.version = v; fs.writeFileSync(f, JSON.stringify(p, null, 2))' "$t/$to/package.json" "$v"
  if [ "$kind" = broken ]; then
    printf 'console.error("this release is broken on purpose"); process.exit(3);\n' >"$t/$to/dist/daemon.mjs"
  fi
  tar -czf "$release_dir/$to.tar.gz" -C "$t" "$to"
  (cd "$release_dir" && sha256sum "$to.tar.gz" >"$to.tar.gz.sha256")
  rm -rf "$t"
}
final_version="$version"
# SW_APPLY_VERIFY_ONLY=1 (with SW_APPLY_WORK): skip the playbook, only re-run the checks.
if [ -n "${SW_APPLY_VERIFY_ONLY:-}" ]; then
  final_version="$(basename "$(current)")"
else
echo "deploy-apply-test: first apply of $version into $root (the controller builds the release)"
playbook | tee "$work/apply-1.log"
[ -f "$release_dir/screamwatch-daemon-$version-linux-$arch.tar.gz" ] || fail "the playbook did not build the daemon release"
echo "deploy-apply-test: second apply (must change nothing)"
playbook | tee "$work/apply-2.log"
if ! grep -Eq '^pi-under-test +: ok=[0-9]+ +changed=0 ' "$work/apply-2.log" ||
  ! grep -Eq '^cloud-under-test +: ok=[0-9]+ +changed=0 ' "$work/apply-2.log"; then
  fail "the second run changed something (not idempotent)"
fi
[ "$(current)" = "/opt/screamwatch/releases/$version" ] || fail "current is $(current), not releases/$version"

echo "deploy-apply-test: update the sensor to $version-next"
repack "$version-next"
playbook --limit pi-under-test -e "screamwatch_version=$version-next" | tee "$work/apply-next.log"
[ "$(current)" = "/opt/screamwatch/releases/$version-next" ] || fail "current is $(current) after the update"
[ -d "$root/opt/screamwatch/releases/$version" ] || fail "the previous release was not kept"

echo "deploy-apply-test: a release whose daemon exits at start must be rolled back"
repack "$version-broken" broken
if playbook --limit pi-under-test -e "screamwatch_version=$version-broken" >"$work/apply-broken.log" 2>&1; then
  cat "$work/apply-broken.log"; fail "the broken release was deployed without a failure"
fi
cat "$work/apply-broken.log"
grep -q "rolled back to $version-next" "$work/apply-broken.log" || fail "no rollback message"
grep -q "this release is broken on purpose" "$work/apply-broken.log" || fail "the settle check did not show the daemon's output"
[ "$(current)" = "/opt/screamwatch/releases/$version-next" ] || fail "current is $(current) after the rollback"
[ ! -e "$root/opt/screamwatch/releases/$version-broken" ] || fail "the failed release was left in releases/"

echo "deploy-apply-test: one more release: only the last 2 stay"
repack "$version-next2"
playbook --limit pi-under-test -e "screamwatch_version=$version-next2" | tee "$work/apply-next2.log"
[ "$(current)" = "/opt/screamwatch/releases/$version-next2" ] || fail "current is $(current) after the last update"
kept="$(cd "$root/opt/screamwatch/releases" && ls -d */ | tr -d / | sort | tr '\n' ' ')"
[ "$kept" = "$version-next $version-next2 " ] || fail "releases/ holds: $kept (want $version-next $version-next2)"
final_version="$version-next2"
fi

cd "$repo"
SW_APPLIED_ROOT="$root" SW_APPLIED_SENSOR_PASSWORD="$sensor_password" SW_APPLIED_VERSION="$final_version" \
  SW_APPLIED_CLOUD_VERSION="$version" SW_APPLIED_NODE_VERSION="$node_version" SW_APPLIED_ADMIN_PASSWORD="$admin_password" \
  npx vitest run test/deploy/applied-root.test.ts
