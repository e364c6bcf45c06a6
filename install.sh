#!/usr/bin/env bash
# install.sh — puts the Quicksand agent on a host (or into an image's root folder).
#
#   ./install.sh --server URL --secret S          install, enrol, start
#   ./install.sh --root DIR --server URL --secret S
#                                                 install into an image: each machine made from it
#                                                 enrols on its own first boot
#   ./install.sh --uninstall                      remove everything it installed
#
# Run it from a built checkout or an unpacked release (dist/ present: `npm ci && npm run build`).
# Every step checks before it changes anything, so running it again changes nothing.
set -euo pipefail

PREFIX=/opt/quicksand
CONFIG_DIR=/etc/quicksand
STATE_DIR=/var/lib/quicksand
UNIT=/etc/systemd/system/quicksand-agent.service
ENROLL_UNIT=/etc/systemd/system/quicksand-enroll.service
WANTS=/etc/systemd/system/multi-user.target.wants
SERVICE_USER=quicksand
NODE_MAJOR_MIN=20
# The runtime dependencies of the agent (the server's are not installed on hosts).
AGENT_DEPS=(better-sqlite3 ws node-cron zod @napi-rs/xattr)

ROOT=""
SERVER=""
SECRET=""
INIT=auto
UNINSTALL=0
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<EOF
Usage: install.sh --server URL --secret S [--root DIR] [--init auto|systemd|none]
       install.sh --uninstall [--root DIR] [--init auto|systemd|none]

Installs the Quicksand agent: the built agent under $PREFIX, a service user
"$SERVICE_USER", its identity in $CONFIG_DIR/agent.json (mode 0600), its state in
$STATE_DIR, and a hardened systemd unit when systemd is there. Enrols the host
with the server on the first run. Safe to run again: what is in place is kept.

With --root (an image) nothing is enrolled: every machine made from the image
would share one identity. The server and secret go to $CONFIG_DIR/enroll.json
(mode 0600) instead, and quicksand-enroll.service enrols each machine on its
first boot with its own /etc/machine-id and hostname, then removes that file.

Options:
  --server URL     the Quicksand server, e.g. http://quicksand.example:7410 (a comma
                   list for several nodes without a balancer)
  --secret S       an enrolment secret (quicksand-server enroll-secret)
  --root DIR       install into the root folder DIR (an image, a chroot) instead of /
  --init KIND      systemd: install the unit; none: do not; auto (default): when systemd is there
  --uninstall      remove the agent, its unit, config, state and service user
  -h, --help       this help
EOF
}

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER="${2:-}"; shift 2 ;;
    --secret) SECRET="${2:-}"; shift 2 ;;
    --root) ROOT="${2:-}"; shift 2 ;;
    --init) INIT="${2:-}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

case "$INIT" in auto|systemd|none) ;; *) die "--init must be auto, systemd or none" ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root: it creates a service user and writes under /etc and /opt"
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
  ROOT="$(cd "$ROOT" && pwd)"
  [ "$ROOT" = "/" ] && ROOT=""
fi
R() { printf '%s%s' "$ROOT" "$1"; }

has_systemd() {
  case "$INIT" in
    systemd) return 0 ;;
    none) return 1 ;;
  esac
  if [ -z "$ROOT" ]; then [ -d /run/systemd/system ]; else [ -e "$ROOT/lib/systemd/systemd" ] || [ -e "$ROOT/usr/lib/systemd/systemd" ]; fi
}
# Only a live systemd on this machine is talked to; a root folder only gets files.
live_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

user_exists() { grep -q "^${SERVICE_USER}:" "$(R /etc/passwd)" 2>/dev/null; }
user_uid() { awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$(R /etc/passwd)"; }
user_gid() { awk -F: -v u="$SERVICE_USER" '$1 == u { print $4 }' "$(R /etc/passwd)"; }
in_root() { if [ -n "$ROOT" ]; then "$@" --root "$ROOT"; else "$@"; fi; }

# Sets owner/mode only when they differ, so a second run does not even touch ctime.
ensure_owner_mode() { # path uid gid mode
  local want="$2:$3 $4" have
  have="$(stat -c '%u:%g %a' "$1")"
  if [ "$have" != "$want" ]; then chown "$2:$3" "$1"; chmod "$4" "$1"; fi
}

uninstall() {
  if live_systemd && systemctl list-unit-files quicksand-agent.service >/dev/null 2>&1; then
    systemctl disable --now quicksand-agent.service >/dev/null 2>&1 || true
  fi
  local removed=0 created=""
  if [ -f "$(R "$PREFIX")/.created-dirs" ]; then created="$(cat "$(R "$PREFIX")/.created-dirs")"; fi
  for p in "$UNIT" "$WANTS/quicksand-agent.service" "$ENROLL_UNIT" "$WANTS/quicksand-enroll.service" "$PREFIX" "$CONFIG_DIR" "$STATE_DIR"; do
    if [ -e "$(R "$p")" ] || [ -L "$(R "$p")" ]; then rm -rf "$(R "$p")"; say "removed $p"; removed=1; fi
  done
  # Folders only this installer created go too, if nothing else was put in them since.
  for d in $created; do rmdir "$(R "$d")" 2>/dev/null || true; done
  if live_systemd; then systemctl daemon-reload; fi
  if user_exists; then
    in_root userdel "$SERVICE_USER"
    say "removed user $SERVICE_USER"
    removed=1
  fi
  if grep -q "^${SERVICE_USER}:" "$(R /etc/group)" 2>/dev/null; then in_root groupdel "$SERVICE_USER"; fi
  [ "$removed" -eq 1 ] || say "nothing to remove: the agent is not installed"
  say "The server still lists this host; revoke it there: quicksand-server agent revoke AGENT_ID"
}

check_node() {
  command -v node >/dev/null || die "Node.js $NODE_MAJOR_MIN or newer is needed (apt-get install nodejs, or nodejs.org)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge "$NODE_MAJOR_MIN" ] || die "Node.js $NODE_MAJOR_MIN or newer is needed; this is $(node --version)"
  if [ -n "$ROOT" ] && [ ! -x "$ROOT/usr/bin/node" ] && [ ! -x "$ROOT/usr/local/bin/node" ]; then
    say "note: $ROOT has no Node.js yet; the agent needs Node.js $NODE_MAJOR_MIN+ there before it can run"
  fi
}

# Builds the tree that belongs under $PREFIX in a temporary folder: the built agent, the shared
# schemas, and the agent's runtime dependencies (with their own dependencies), nothing else.
stage_app() {
  local stage="$1"
  [ -f "$SRC/dist/agent/main.js" ] || die "no built agent in $SRC/dist: run \`npm ci && npm run build\` first"
  mkdir -p "$stage/dist" "$stage/node_modules" "$stage/bin"
  cp -R "$SRC/dist/agent" "$SRC/dist/shared" "$stage/dist/"
  cp "$SRC/package.json" "$stage/package.json"
  local dirs
  dirs="$(cd "$SRC" && node --input-type=module -e '
    import { createRequire } from "node:module";
    import { existsSync, readFileSync } from "node:fs";
    import path from "node:path";
    const require = createRequire(path.join(process.cwd(), "package.json"));
    const seen = new Set();
    const visit = (name, from) => {
      const req = createRequire(path.join(from, "package.json"));
      let pkgJson;
      // A package whose "exports" hides its package.json (readdirp) is looked up the way Node
      // looks up a bare name: node_modules of this folder, then of each parent.
      const lookUp = () => {
        for (let d = from; ; d = path.dirname(d)) {
          const p = path.join(d, "node_modules", name, "package.json");
          if (existsSync(p)) return p;
          if (path.dirname(d) === d) throw new Error(`cannot find ${name} (needed from ${from})`);
        }
      };
      try { pkgJson = req.resolve(`${name}/package.json`); } catch { pkgJson = lookUp(); }
      const dir = path.dirname(pkgJson);
      if (seen.has(dir)) return;
      seen.add(dir);
      const pkg = JSON.parse(readFileSync(pkgJson, "utf8"));
      for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir);
      // Optional ones are the prebuilt binaries of other platforms (@napi-rs/xattr): take the one
      // npm installed here, skip the rest.
      for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
        try { visit(dep, dir); } catch { /* not installed on this platform */ }
      }
    };
    for (const name of process.argv.slice(1)) visit(name, process.cwd());
    const root = path.join(process.cwd(), "node_modules") + path.sep;
    console.log([...seen].map((d) => d.slice(d.indexOf("node_modules" + path.sep) + 13)).sort().join("\n"));
  ' "${AGENT_DEPS[@]}")"
  # Build leftovers of the native module (objects, sources, the test extension) are not needed.
  # shellcheck disable=SC2086
  tar -C "$SRC/node_modules/" -cf - --exclude='*/deps' --exclude='*/src' --exclude='*/build/Release/obj*' \
    --exclude='*/build/Release/.deps' --exclude='*/build/Release/*.a' --exclude='*/build/Release/test_extension.node' \
    --exclude='*/build/deps' --exclude='*/build/*.mk' --exclude='*/build/Makefile' --exclude='*/build/config.gypi' \
    $dirs | tar -C "$stage/node_modules" -xf -
  cat > "$stage/bin/quicksand-agent" <<'EOF'
#!/bin/sh
exec node /opt/quicksand/dist/agent/main.js "$@"
EOF
  chmod 0755 "$stage/bin/quicksand-agent"
  # Root owns the program; the service user may read and run it, not change it.
  chown -R 0:0 "$stage"
  chmod -R u+rwX,go+rX,go-w "$stage"
}

install_app() {
  local stage target next
  target="$(R "$PREFIX")"
  # Staged outside the root, so a run that changes nothing does not even touch its folders.
  stage="$(mktemp -d)"
  stage_app "$stage"
  chmod 0755 "$stage"
  if [ -d "$target" ] && diff -r -q --no-dereference "$stage" "$target" >/dev/null 2>&1; then
    rm -rf "$stage"
    say "unchanged $PREFIX"
    return 1
  fi
  # Keep the list of folders an earlier run created (the uninstaller removes them).
  if [ -f "$target/.created-dirs" ]; then cp -p "$target/.created-dirs" "$stage/.created-dirs"; fi
  mkdir -p "$(dirname "$target")"
  next="$(dirname "$target")/.quicksand-new.$$"
  cp -a "$stage" "$next"
  rm -rf "$stage" "$target"
  mv "$next" "$target"
  say "installed the agent in $PREFIX"
  return 0
}

install_user() {
  if user_exists; then say "unchanged user $SERVICE_USER"; return; fi
  in_root useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
    --comment "Quicksand agent" "$SERVICE_USER"
  say "created user $SERVICE_USER"
}

install_dirs() {
  local uid gid
  uid="$(user_uid)"; gid="$(user_gid)"
  mkdir -p "$(R "$STATE_DIR")" "$(R "$CONFIG_DIR")"
  ensure_owner_mode "$(R "$STATE_DIR")" "$uid" "$gid" 700
  ensure_owner_mode "$(R "$CONFIG_DIR")" 0 "$gid" 750
}

enrol() {
  local config uid gid
  config="$(R "$CONFIG_DIR/agent.json")"
  uid="$(user_uid)"; gid="$(user_gid)"
  if [ -s "$config" ]; then
    say "unchanged $CONFIG_DIR/agent.json (already enrolled: $(sed -n 's/.*"agentId": *"\([^"]*\)".*/\1/p' "$config"))"
    [ -z "$ROOT" ] || say "warning: $ROOT carries an agent identity: every machine made from it would be the same agent (the server raises identity-cloned); remove $CONFIG_DIR/agent.json from the image"
  elif [ -n "$ROOT" ]; then
    first_boot_enrolment
    return
  else
    [ -n "$SERVER" ] && [ -n "$SECRET" ] || die "this host is not enrolled yet: pass --server URL and --secret S"
    node "$(R "$PREFIX")/dist/agent/main.js" enroll --server "$SERVER" --secret "$SECRET" \
      --config "$config" --state "$(R "$STATE_DIR")" >/dev/null
    say "enrolled with $SERVER; identity in $CONFIG_DIR/agent.json"
  fi
  ensure_owner_mode "$config" "$uid" "$gid" 600
}

# An image gets where to enrol, never an identity: each machine enrols on its own first boot.
first_boot_enrolment() {
  local file want
  file="$(R "$CONFIG_DIR/enroll.json")"
  if [ -z "$SERVER" ] && [ -z "$SECRET" ] && [ -s "$file" ]; then
    say "unchanged $CONFIG_DIR/enroll.json (machines made from $ROOT enrol on first boot)"
    return
  fi
  [ -n "$SERVER" ] && [ -n "$SECRET" ] || die "machines made from $ROOT enrol on their first boot: pass --server URL and --secret S"
  # Both are written into JSON as they are: only characters that need no escaping.
  # Several nodes without a balancer: a comma list, all of them kept in "servers".
  [[ "$SERVER" =~ ^https?://[A-Za-z0-9.:/_~%@+=-]+(,https?://[A-Za-z0-9.:/_~%@+=-]+)*$ ]] || die "--server: expected a URL like http://quicksand.example:7410 (or a comma list of them), got \"$SERVER\""
  [[ "$SECRET" =~ ^[A-Za-z0-9._-]+$ ]] || die "--secret: expected an enrolment secret (qse.…), got something else"
  local servers=""
  [[ "$SERVER" == *,* ]] && servers="$(printf '\n  "servers": ["%s"],' "${SERVER//,/\", \"}")"
  want="$(printf '{\n  "server": "%s",%s\n  "secret": "%s"\n}' "${SERVER%%,*}" "$servers" "$SECRET")"
  if [ -f "$file" ] && [ "$(cat "$file")" = "$want" ]; then
    say "unchanged $CONFIG_DIR/enroll.json (machines made from $ROOT enrol on first boot)"
  else
    (umask 077; printf '%s\n' "$want" > "$file")
    say "machines made from $ROOT enrol with $SERVER on their first boot ($CONFIG_DIR/enroll.json)"
  fi
  ensure_owner_mode "$file" 0 0 600
  if [ -s "$(R /etc/machine-id)" ] && [ "$(cat "$(R /etc/machine-id)")" != "uninitialized" ]; then
    say "warning: $ROOT/etc/machine-id is set: machines made from it would share it; empty it (: > /etc/machine-id) so each gets its own on first boot"
  fi
}

enroll_unit_text() {
  cat <<EOF
# Installed by Quicksand's install.sh; remove with install.sh --uninstall.
# Enrols this machine once, on its first boot, with its own machine-id and hostname.
[Unit]
Description=Quicksand agent: enrol this machine with its server (first boot)
After=network-online.target
Wants=network-online.target
Before=quicksand-agent.service
ConditionPathExists=$CONFIG_DIR/enroll.json
ConditionPathExists=!$CONFIG_DIR/agent.json

[Service]
Type=oneshot
ExecStart=/usr/bin/env node $PREFIX/dist/agent/main.js enroll --from $CONFIG_DIR/enroll.json --config $CONFIG_DIR/agent.json
ExecStartPost=/bin/chown $SERVICE_USER:$SERVICE_USER $CONFIG_DIR/agent.json
# The server may not be reachable yet on a first boot: try again.
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
EOF
}

unit_text() {
  cat <<EOF
# Installed by Quicksand's install.sh; remove with install.sh --uninstall.
[Unit]
Description=Quicksand agent: reports drift of this host from its image
After=network-online.target quicksand-enroll.service
Wants=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
ExecStart=/usr/bin/env node $PREFIX/dist/agent/main.js run --state $STATE_DIR --config $CONFIG_DIR/agent.json
Restart=always
RestartSec=10
# It must read every file of the system to hash it, and nothing else: that one capability.
AmbientCapabilities=CAP_DAC_READ_SEARCH
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$STATE_DIR
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0077
# No MemoryDenyWriteExecute: V8's JIT needs writable+executable pages.

[Install]
WantedBy=multi-user.target
EOF
}

# Writes a unit file when its text differs; returns 0 when it wrote it.
place_unit() { # path text
  local file
  file="$(R "$1")"
  mkdir -p "$(dirname "$file")"
  if [ -f "$file" ] && [ "$(cat "$file")" = "$2" ]; then
    say "unchanged $1"
    return 1
  fi
  printf '%s\n' "$2" > "$file"
  chmod 0644 "$file"
  say "installed $1"
}

# What `systemctl enable` does, done by hand for a root folder that is not running.
enable_in_root() { # unit-name
  local wants
  wants="$(R "$WANTS")"
  [ ! -L "$wants/$1" ] || return 0
  if [ ! -d "$wants" ]; then
    mkdir -p "$wants"
    echo "$WANTS" >> "$(R "$PREFIX")/.created-dirs"
  fi
  ln -s "/etc/systemd/system/$1" "$wants/$1"
  say "enabled $1"
}

install_unit() {
  local app_changed="$1" changed=0
  if ! has_systemd; then
    if [ -n "$ROOT" ]; then
      say "no systemd in $ROOT: on each machine's first boot, as root, enrol it, then start the agent:"
      say "  $PREFIX/bin/quicksand-agent enroll --from $CONFIG_DIR/enroll.json --config $CONFIG_DIR/agent.json && chown $SERVICE_USER: $CONFIG_DIR/agent.json"
      say "  $PREFIX/bin/quicksand-agent run --state $STATE_DIR --config $CONFIG_DIR/agent.json"
    else
      say "no systemd here: start the agent with your init system, as root (it reads the whole system):"
      say "  $PREFIX/bin/quicksand-agent run --state $STATE_DIR --config $CONFIG_DIR/agent.json"
    fi
    return
  fi
  place_unit "$UNIT" "$(unit_text)" && changed=1
  if live_systemd; then
    [ "$changed" -eq 0 ] || systemctl daemon-reload
    systemctl enable quicksand-agent.service >/dev/null 2>&1
    if [ "$changed" -eq 1 ] || [ "$app_changed" -eq 1 ] || ! systemctl is-active --quiet quicksand-agent.service; then
      systemctl restart quicksand-agent.service
      say "started quicksand-agent.service (journalctl -u quicksand-agent to follow it)"
    fi
  else
    enable_in_root quicksand-agent.service
    # An image enrols on first boot; a root already enrolled (an older install) does not need it.
    if [ -n "$ROOT" ] && [ -s "$(R "$CONFIG_DIR/enroll.json")" ]; then
      place_unit "$ENROLL_UNIT" "$(enroll_unit_text)" || true
      enable_in_root quicksand-enroll.service
    fi
  fi
}

if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
  exit 0
fi

check_node
app_changed=0
install_app && app_changed=1
install_user
install_dirs
enrol
install_unit "$app_changed"
say "done"
