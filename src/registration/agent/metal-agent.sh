#!/bin/sh
# metal-agent: the registration agent. Collects this machine's hardware, picks its service tag and
# posts the enrollment payload to the enrollment_url= on the kernel command line, then reboots, powers
# off or stays on as metal.after= says. A failed enrollment is retried with backoff, its reason printed
# on every console each time, and the machine never powers off on its own after a failure.
#
# Runs under busybox alone (sh, awk, sed, tr, wget); uses dmidecode, lsblk, ethtool, lspci, jq, curl,
# ipmitool (BMC address), smartctl (disk health) and lldpctl (the switch port of each NIC, from a
# running lldpd) when they are on PATH.
#
# Usage: metal-agent.sh [--print]
#   --print   print the payload JSON on stdout and exit (no network, no power-off)
# Environment:
#   METAL_AGENT_ROOT           prefix of every file read (/proc, /sys, /dev/console); default: empty (/);
#                              the tools on PATH must then describe the same tree
#   METAL_AGENT_TIMEOUT        seconds to keep trying before giving up; default 0: never give up
#   METAL_AGENT_NO_POWEROFF=1  exit instead of rebooting or powering off (also: metal.agent_stay)
#   METAL_AGENT_CONSOLE        space-separated files the messages are also written to; default: every
#                              console= of the kernel line (else /dev/console); empty: stdout only
#   METAL_AGENT_LLDP_WAIT      seconds to wait for LLDP neighbours (metal.lldp_wait= wins); default 10
# Kernel command line:
#   enrollment_url=http://host:port/api/v1/enroll   where to post (required unless --print)
#   metal.enroll_token=TOKEN                        sent as the X-Metal-Enroll-Token header
#   metal.boot_mac=MAC                              the NIC the machine network-booted from: the primary MAC
#   metal.after=reboot|poweroff|hold                what to do once enrolled; default poweroff
#   metal.agent_stay                                do not reboot or power off
#   metal.lldp_wait=SECONDS                         wait for LLDP neighbours up to this long (0 to 120)
# Exit status: 0 enrolled (or printed), 1 gave up (METAL_AGENT_TIMEOUT), 2 cannot run (no URL, no NIC).

export LC_ALL=C
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

ROOT=${METAL_AGENT_ROOT:-}
TIMEOUT=${METAL_AGENT_TIMEOUT:-0}
LOAD_IPMI_DRIVERS=
DMI=$ROOT/sys/class/dmi/id
TMP=${TMPDIR:-/tmp}/metal-agent.$$
mkdir -p "${TMP%/*}" 2>/dev/null

# Vendor placeholders that are not serials; keep in step with isPlaceholderSerial in src/core/validation.ts.
PLACEHOLDER_SERIALS='to be filled by o.e.m.|to be filled by oem|default string|system serial number|not specified|not applicable|none|n/a|0|chassis serial number|serial number|0123456789'

# JSON string encoding in awk: trims surrounding whitespace, escapes quote, backslash and control
# characters, keeps valid UTF-8, drops invalid bytes and NULs, and caps the length in characters.
JSON_AWK='
function jinit(  i) { for (i = 1; i < 256; i++) ORD[sprintf("%c", i)] = i; JINIT = 1 }
function jstr(s, max,   out, n, i, c, b, b2, need, j, ok, count) {
  if (!JINIT) jinit()
  sub(/^[ \t\r\n\v\f]+/, "", s); sub(/[ \t\r\n\v\f]+$/, "", s)
  out = ""; n = length(s); i = 1; count = 0
  while (i <= n && count < max) {
    c = substr(s, i, 1); b = ORD[c]
    if (b == 34) out = out "\\\""
    else if (b == 92) out = out "\\\\"
    else if (b == 10) out = out "\\n"
    else if (b == 9) out = out "\\t"
    else if (b == 13) out = out "\\r"
    else if (b == 0) { i++; continue }
    else if (b < 32 || b == 127) out = out sprintf("\\u%04x", b)
    else if (b < 128) out = out c
    else {
      need = (b >= 194 && b <= 223) ? 1 : (b >= 224 && b <= 239) ? 2 : (b >= 240 && b <= 244) ? 3 : 0
      ok = need > 0
      for (j = 1; ok && j <= need; j++) { b2 = ORD[substr(s, i + j, 1)]; if (b2 < 128 || b2 > 191) ok = 0 }
      if (ok) {
        b2 = ORD[substr(s, i + 1, 1)]
        if ((b == 224 && b2 < 160) || (b == 237 && b2 > 159) || (b == 240 && b2 < 144) || (b == 244 && b2 > 143)) ok = 0
      }
      if (!ok) { i++; continue }
      out = out substr(s, i, need + 1); i += need + 1; count++
      continue
    }
    i++; count++
  }
  return "\"" out "\""
}
'

# say MESSAGE: one line on stdout and every console, control characters (terminal escapes) shown as '?'.
say() {
  line=$(printf 'metal-agent: %s\n' "$*" | awk '{ gsub(/[\001-\037\177]/, "?"); printf "%s%s", (NR > 1 ? " " : ""), $0 }')
  printf '%s\n' "$line"
  set -f
  for c in $CONSOLES; do
    [ -w "$c" ] && printf '%s\n' "$line" >>"$c" 2>/dev/null
  done
  set +f
}

have() { command -v "$1" >/dev/null 2>&1; }

# rd FILE: the file's content without NUL bytes (empty when unreadable).
rd() { [ -r "$1" ] && tr -d '\000' <"$1" 2>/dev/null; }

trim() {
  t=$1
  t=${t#"${t%%[![:space:]]*}"}
  t=${t%"${t##*[![:space:]]}"}
  printf '%s' "$t"
}

lower() { printf '%s' "$1" | tr 'A-Z' 'a-z'; }

# js VALUE [MAX]: VALUE as a JSON string of at most MAX (default 255) characters.
js() { JS_VALUE=$1 JS_MAX=${2:-255} awk "$JSON_AWK"'BEGIN { printf "%s", jstr(ENVIRON["JS_VALUE"], ENVIRON["JS_MAX"] + 0) }'; }

# J is the member list of the object being built; each builder runs in its own $(subshell).
jadd() { J="${J:+$J,}\"$1\":$2"; }
jadd_str() { [ -n "$(trim "$2")" ] && jadd "$1" "$(js "$2" "${3:-255}")"; }
jadd_str_or_null() { if [ -n "$(trim "$2")" ]; then jadd "$1" "$(js "$2" "${3:-255}")"; else jadd "$1" null; fi; }
jadd_int() { case $2 in '' | *[!0-9]*) ;; *) jadd "$1" "$2" ;; esac; }

is_placeholder_serial() {
  v=$(lower "$(trim "$1")")
  [ -z "$v" ] && return 0
  old_ifs=$IFS; IFS='|'; set -f
  for p in $PLACEHOLDER_SERIALS; do
    if [ "$v" = "$p" ]; then IFS=$old_ifs; set +f; return 0; fi
  done
  IFS=$old_ifs; set +f
  printf '%s' "$v" | awk 'NR > 1 { exit 1 } { for (i = 2; i <= length($0); i++) if (substr($0, i, 1) != substr($0, 1, 1)) exit 1 }'
}

is_service_tag() {
  case $1 in '' | [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*) return 1 ;; esac
  [ "${#1}" -le 64 ]
}

NL='
'

# A usable SMBIOS UUID: well-formed, and not one that firmware ships on every board (all zeros, all
# ones, the AMI default).
is_uuid() {
  case $1 in *"$NL"*) return 1 ;; esac
  printf '%s' "$1" | grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' || return 1
  case $1 in 00000000-0000-0000-0000-000000000000 | ffffffff-ffff-ffff-ffff-ffffffffffff | 03000200-0400-0500-0006-000700080009) return 1 ;; esac
}

is_mac() {
  case $1 in *"$NL"* | 00:00:00:00:00:00) return 1 ;; esac
  printf '%s' "$1" | grep -Eq '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$'
}

dmi() {
  v=$(rd "$DMI/$1")
  if [ -z "$(trim "$v")" ] && have dmidecode; then v=$(dmidecode -s "$2" 2>/dev/null | grep -v '^#' | head -n 1); fi
  trim "$v"
}

cmdline_arg() {
  set -f
  for w in $(rd "$ROOT/proc/cmdline"); do
    case $w in "$1"=*) set +f; printf '%s' "${w#*=}"; return 0 ;; "$1") set +f; printf '1'; return 0 ;; esac
  done
  set +f
  return 1
}

# The consoles of the kernel line (console=ttyS1,115200 -> /dev/ttyS1), else /dev/console: where
# the outcome must be readable, whichever one the site's serial-over-LAN or screen shows.
console_files() {
  if [ "${METAL_AGENT_CONSOLE+set}" = set ]; then printf '%s\n' "$METAL_AGENT_CONSOLE"; return 0; fi
  found=
  set -f
  for w in $(rd "$ROOT/proc/cmdline"); do
    case $w in console=*)
      c=${w#console=}; c=${c%%,*}
      case $c in '' | *[!A-Za-z0-9]*) ;; *) found="$found $ROOT/dev/$c" ;; esac
      ;;
    esac
  done
  set +f
  printf '%s\n' "${found:-$ROOT/dev/console}"
}

cpu_json() {
  J=
  eval "$(awk -F': *' '
    /^processor[ \t]*:/ { threads++ }
    /^model name[ \t]*:/ && model == "" { model = $2 }
    /^physical id[ \t]*:/ { phys = $2; if (!(phys in socks)) { socks[phys] = 1; sockets++ } }
    /^core id[ \t]*:/ { key = phys "/" $2; if (!(key in seen)) { seen[key] = 1; cores++ } }
    END {
      if (sockets == 0 && threads > 0) sockets = 1
      if (cores == 0) cores = threads
      printf "CPU_THREADS=%d CPU_SOCKETS=%d CPU_CORES=%d\n", threads, sockets, cores
    }' "$ROOT/proc/cpuinfo" 2>/dev/null)"
  jadd_str model "$(awk -F': *' '/^model name[ \t]*:/ { print $2; exit }' "$ROOT/proc/cpuinfo" 2>/dev/null)"
  jadd_str architecture "$(uname -m)" 64
  [ "${CPU_THREADS:-0}" -gt 0 ] && { jadd_int sockets "$CPU_SOCKETS"; jadd_int cores "$CPU_CORES"; jadd_int threads "$CPU_THREADS"; }
  printf '{%s}' "$J"
}

dimms_json() {
  have dmidecode || return 0
  dmidecode -t 17 2>/dev/null | awk "$JSON_AWK"'
    function flush() {
      if (inDev && size > 0) {
        printf "%s{\"locator\":%s,\"size_bytes\":%.0f", (n++ ? "," : ""), jstr(locator, 255), size
        if (type != "" && type != "Unknown") printf ",\"type\":%s", jstr(type, 64)
        printf ",\"speed_mts\":%s}", (speed ~ /^[0-9]+$/ ? speed : "null")
      }
      inDev = 0; size = 0; locator = ""; type = ""; speed = ""
    }
    BEGIN { printf "[" }
    /^Memory Device/ { flush(); inDev = 1; next }
    /^Handle / { flush(); next }
    inDev && /^[ \t]+Size:/ {
      split($0, f, ": "); split(f[2], p, " ")
      u = p[2]; size = p[1] * (u == "kB" || u == "KB" ? 1024 : u == "MB" ? 1048576 : u == "GB" ? 1073741824 : u == "TB" ? 1099511627776 : 0)
    }
    inDev && /^[ \t]+Locator:/ { locator = substr($0, index($0, ":") + 2) }
    inDev && /^[ \t]+Type:/ { type = substr($0, index($0, ":") + 2) }
    inDev && /^[ \t]+Speed:/ { split(substr($0, index($0, ":") + 2), p, " "); speed = p[1] }
    END { flush(); printf "]" }'
}

memory_json() {
  J=
  kb=$(awk '/^MemTotal:/ { print $2; exit }' "$ROOT/proc/meminfo" 2>/dev/null)
  case $kb in '' | *[!0-9]*) ;; *) jadd total_bytes "$((kb * 1024))" ;; esac
  d=$(dimms_json)
  [ -n "$d" ] && jadd dimms "$d"
  printf '{%s}' "$J"
}

# Logical volumes of hardware RAID controllers, by the model they report (PERC, Smart Array, MegaRAID, ...).
is_logical_volume() {
  case $(lower "$1") in
    *"logical volume"* | perc* | *" perc "* | *megaraid* | mr9* | *raid* | *"virtual disk"* | *virtual_disk* | *"smart array"*) return 0 ;;
  esac
  return 1
}

# The first RAID controller on the PCI bus (class 0x0104), named by lspci when present.
raid_controller() {
  for d in "$ROOT"/sys/bus/pci/devices/*; do
    case $(trim "$(rd "$d/class")") in 0x0104??) ;; *) continue ;; esac
    addr=${d##*/}
    if have lspci; then
      line=$(lspci -mm -s "$addr" 2>/dev/null | head -n 1)
      name=$(printf '%s' "$line" | awk -F'"' '{ v = $4; m = $6; s = $10; printf "%s%s%s", v, (v != "" && m != "" ? " " : ""), m; if (s != "") printf " (%s)", s }')
      [ -n "$(trim "$name")" ] && { printf '%s' "$name"; return 0; }
    fi
    printf 'PCI %s:%s at %s' "$(trim "$(rd "$d/vendor")")" "$(trim "$(rd "$d/device")")" "$addr"
    return 0
  done
}

# SMART health of one disk from smartctl (when present): passed, power-on hours, temperature.
smart_json() {
  have smartctl || return 0
  timeout 30 smartctl -H -A "/dev/$1" 2>/dev/null | awk '
    /overall-health self-assessment test result:|SMART Health Status:/ {
      v = $NF; if (v == "PASSED" || v == "OK") passed = "true"; else if (v != "") passed = "false"
    }
    /^[ \t]*9 Power_On_Hours/ { split($10, p, /[^0-9]/); hours = p[1] }
    /^Power On Hours:/ { h = $4; gsub(/,/, "", h); hours = h }
    /^(19[04]) (Temperature_Celsius|Airflow_Temperature_Cel)/ && temp == "" { split($10, p, /[^0-9]/); temp = p[1] }
    /^Temperature:/ && temp == "" { temp = $2 }
    END {
      if (passed == "") exit
      printf "{\"passed\":%s", passed
      if (hours ~ /^[0-9]+$/) printf ",\"power_on_hours\":%s", hours
      if (temp ~ /^[0-9]+$/) printf ",\"temperature_c\":%s", temp
      printf "}"
    }'
}

disks_json() {
  RAID_CONTROLLER=$(raid_controller)
  out=
  for b in "$ROOT"/sys/block/*; do
    [ -e "$b" ] || continue
    name=${b##*/}
    case $name in loop* | ram* | zram* | sr* | dm-* | nbd* | fd* | md*) continue ;; esac
    J=
    jadd_str name "$name"
    sectors=$(trim "$(rd "$b/size")")
    case $sectors in '' | *[!0-9]*) ;; *) jadd size_bytes "$((sectors * 512))" ;; esac
    model=$(rd "$b/device/model")
    serial=$(rd "$b/device/serial")
    [ -z "$(trim "$serial")" ] && serial=$(rd "$b/serial")
    if [ -z "$(trim "$model$serial")" ] || [ -z "$(trim "$serial")" ]; then
      if have lsblk; then
        [ -z "$(trim "$model")" ] && model=$(lsblk -dno MODEL "/dev/$name" 2>/dev/null)
        [ -z "$(trim "$serial")" ] && serial=$(lsblk -dno SERIAL "/dev/$name" 2>/dev/null)
      fi
    fi
    jadd_str_or_null model "$model"
    jadd_str_or_null serial "$serial"
    case $(trim "$(rd "$b/queue/rotational")") in 0) jadd rotational false ;; 1) jadd rotational true ;; *) jadd rotational null ;; esac
    if is_logical_volume "$model $(rd "$b/device/vendor")"; then
      # A RAID controller's logical volume: its model, size and serial are the controller's, not a disk's.
      jadd kind '"raid"'
      jadd_str_or_null controller "$RAID_CONTROLLER"
    else
      case $name in nvme*) jadd kind '"nvme"' ;; *) jadd kind '"disk"' ;; esac
      smart=$(smart_json "$name")
      [ -n "$smart" ] && jadd smart "$smart"
    fi
    out="${out:+$out,}{$J}"
  done
  printf '[%s]' "$out"
}

# Physical NICs: every /sys/class/net entry but lo and virtual devices (no device link).
physical_nics() {
  for n in "$ROOT"/sys/class/net/*; do
    name=${n##*/}
    [ "$name" = lo ] && continue
    [ -L "$n/device" ] || [ -e "$n/device" ] || continue
    printf '%s\n' "$name"
  done
}

nic_link() {
  case $(trim "$(rd "$1/carrier")") in
    1) echo true ;;
    0) echo false ;;
    *) case $(trim "$(rd "$1/operstate")") in up) echo true ;; down | dormant | lowerlayerdown | notpresent) echo false ;; *) echo null ;; esac ;;
  esac
}

nic_speed() {
  s=$(trim "$(rd "$1/speed")")
  if [ -z "$s" ] && have ethtool; then
    s=$(ethtool "$2" 2>/dev/null | awk '/^[ \t]*Speed:/ { sub(/Mb\/s.*/, "", $2); print $2; exit }')
  fi
  case $s in '' | *[!0-9]*) echo null ;; *) [ "$s" -gt 0 ] && echo "$s" || echo null ;; esac
}

nics_json() {
  out=
  physical_nics >"$TMP.nics"
  while IFS= read -r name; do
    n=$ROOT/sys/class/net/$name
    J=
    jadd_str name "$name"
    jadd_str_or_null mac "$(lower "$(trim "$(rd "$n/address")")")" 64
    drv=$(readlink "$n/device/driver" 2>/dev/null)
    jadd_str_or_null driver "${drv##*/}"
    jadd speed_mbps "$(nic_speed "$n" "$name")"
    jadd link "$(nic_link "$n")"
    [ -n "$BOOT_MAC" ] && [ "$(lower "$(trim "$(rd "$n/address")")")" = "$BOOT_MAC" ] && jadd boot true
    lldp=$(nic_lldp "$name")
    [ -n "$lldp" ] && jadd lldp "$lldp"
    out="${out:+$out,}{$J}"
  done <"$TMP.nics"
  printf '[%s]' "$out"
}

# LLDP: which switch and port each NIC is cabled to, from lldpd (lldpctl -f keyvalue). lldpd sends its
# first frames as it starts, and a switch that sees a new neighbour answers at once (IEEE 802.1AB-2009
# fast transmission) rather than on its 30 s timer; so this asks once a second until every NIC with
# link has a neighbour, for at most metal.lldp_wait= seconds (default 10). A NIC cabled to something
# that does not speak LLDP costs that wait once; an lldpd that does not answer costs 5 s, and no lldpctl
# on PATH nothing.
lldp_collect() {
  : >"$TMP.lldp"
  have lldpctl || return 0
  lldp_wait=$(cmdline_arg metal.lldp_wait) || lldp_wait=${METAL_AGENT_LLDP_WAIT:-10}
  case $lldp_wait in '' | *[!0-9]*) lldp_wait=10 ;; esac
  [ "$lldp_wait" -gt 120 ] && lldp_wait=120
  physical_nics >"$TMP.nics"
  waited=0
  while :; do
    if ! timeout 10 lldpctl -f keyvalue >"$TMP.lldp" 2>/dev/null; then
      : >"$TMP.lldp"
      # No lldpd answering (not installed as a service, or not started): a moment for one starting up, no more.
      if [ "$waited" -ge 5 ]; then
        [ -z "$PRINT_ONLY" ] && say "lldpd does not answer lldpctl: switch ports stay unknown"
        return 0
      fi
    fi
    missing=
    while IFS= read -r name; do
      [ "$(nic_link "$ROOT/sys/class/net/$name")" = true ] || continue
      NIC=$name awk 'index($0, "lldp." ENVIRON["NIC"] ".via=") == 1 { found = 1; exit } END { exit !found }' "$TMP.lldp" || missing="$missing $name"
    done <"$TMP.nics"
    [ -z "$missing" ] && return 0
    [ "$waited" = 0 ] && [ "$lldp_wait" -gt 0 ] && [ -z "$PRINT_ONLY" ] && say "waiting up to ${lldp_wait}s for the switch port (LLDP) of:$missing"
    if [ "$waited" -ge "$lldp_wait" ]; then
      [ -z "$PRINT_ONLY" ] && say "no LLDP neighbour on$missing after ${lldp_wait}s (metal.lldp_wait=): its switch port stays unknown"
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# nic_lldp NAME: the first LLDP neighbour seen on NAME as a JSON object, or nothing. Keys are lldpctl's
# keyvalue names (lldpd src/client/kv_writer.c): an id's subtype is the last part of its key
# (chassis.mac=, port.ifname=), and a VLAN is vlan.vlan-id= with vlan.pvid=yes on the port's own.
nic_lldp() {
  [ -s "$TMP.lldp" ] || return 0
  NIC=$1 awk "$JSON_AWK"'
    BEGIN { p = "lldp." ENVIRON["NIC"] "."; n = 0 }
    index($0, p) != 1 { next }
    {
      kv = substr($0, length(p) + 1); eq = index(kv, "=")
      if (eq == 0) next
      k = substr(kv, 1, eq - 1); v = substr(kv, eq + 1)
      if (k == "via") { n++; next }
      if (n != 1) next
      if (k ~ /^chassis\.(mac|ip|local|ifname|ifalias)$/ && cid == "") { cid = v; ctype = substr(k, 9) }
      else if (k == "chassis.name" && sname == "") sname = v
      else if (k == "chassis.descr" && sdescr == "") sdescr = v
      else if (k == "chassis.mgmt-ip" && mgmt == "") mgmt = v
      else if (k ~ /^port\.(mac|ip|local|ifname|ifalias)$/ && pid == "") { pid = v; ptype = substr(k, 6) }
      else if (k == "port.descr" && pdescr == "") pdescr = v
      else if (k == "vlan.vlan-id") vid = v
      else if (k == "vlan.pvid" && v == "yes" && pvid == "") pvid = vid
    }
    function add(key, value, max) { if (value != "") out = out ",\"" key "\":" jstr(value, max) }
    END {
      out = ""
      add("chassis_id", cid, 255); add("chassis_id_type", ctype, 32)
      add("system_name", sname, 255); add("system_description", sdescr, 255)
      add("port_id", pid, 255); add("port_id_type", ptype, 32); add("port_description", pdescr, 255)
      if (pvid ~ /^[0-9]+$/ && pvid + 0 >= 1 && pvid + 0 <= 4094) out = out ",\"vlan_id\":" (pvid + 0)
      add("management_address", mgmt, 64)
      if (out != "") printf "{%s}", substr(out, 2)
    }' "$TMP.lldp"
}

# The primary MAC: the NIC the machine network-booted from (metal.boot_mac=, which iPXE filled in),
# else the first physical NIC by name with link, else the first physical NIC. By name alone the pick is
# often a BMC's USB NIC or a 1G management port.
primary_mac() {
  PRIMARY_MAC=
  physical_nics >"$TMP.nics"
  if [ -n "$BOOT_MAC" ]; then
    while IFS= read -r name; do
      if [ "$(lower "$(trim "$(rd "$ROOT/sys/class/net/$name/address")")")" = "$BOOT_MAC" ]; then
        PRIMARY_MAC=$BOOT_MAC PRIMARY_SOURCE="the NIC it booted from, $name (metal.boot_mac)"
        return 0
      fi
    done <"$TMP.nics"
    PRIMARY_SOURCE="metal.boot_mac=$BOOT_MAC is no NIC of this machine"
  else
    PRIMARY_SOURCE="no metal.boot_mac on the kernel line"
  fi
  first=
  while IFS= read -r name; do
    n=$ROOT/sys/class/net/$name
    mac=$(lower "$(trim "$(rd "$n/address")")")
    is_mac "$mac" || continue
    [ -z "$first" ] && first=$mac
    if [ "$(nic_link "$n")" = true ]; then
      PRIMARY_MAC=$mac PRIMARY_SOURCE="the first NIC with link, $name ($PRIMARY_SOURCE)"
      return 0
    fi
  done <"$TMP.nics"
  PRIMARY_MAC=$first PRIMARY_SOURCE="the first NIC, none has link ($PRIMARY_SOURCE)"
}

gpu_vendor_name() {
  case $1 in
    0x10de) echo NVIDIA ;; 0x1002) echo AMD ;; 0x8086) echo Intel ;; 0x102b) echo Matrox ;; 0x1a03) echo ASPEED ;;
    *) echo "$1" ;;
  esac
}

gpus_json() {
  out=
  for d in "$ROOT"/sys/bus/pci/devices/*; do
    case $(trim "$(rd "$d/class")") in 0x03????) ;; *) continue ;; esac
    addr=${d##*/}
    J=
    vendor_id=$(trim "$(rd "$d/vendor")")
    vendor=$(gpu_vendor_name "$vendor_id")
    model=
    if have lspci; then
      line=$(lspci -mm -s "$addr" 2>/dev/null | head -n 1)
      model=$(printf '%s' "$line" | awk -F'"' '{ print $6 }')
      [ "$vendor" = "$vendor_id" ] && [ -n "$(printf '%s' "$line" | awk -F'"' '{ print $4 }')" ] && vendor=$(printf '%s' "$line" | awk -F'"' '{ print $4 }')
    fi
    [ -z "$(trim "$model")" ] && model=$(rd "$d/device")
    jadd_str_or_null vendor "$vendor"
    jadd_str_or_null model "$model"
    jadd_str_or_null pci_address "$addr" 64
    out="${out:+$out,}{$J}"
  done
  printf '[%s]' "$out"
}

# The BMC's LAN settings from `ipmitool lan print` (first LAN channel that answers), for power control.
bmc_json() {
  have ipmitool || return 0
  # The IPMI drivers are loaded only on a real run (not --print, not in tests): it changes the machine.
  if [ "${LOAD_IPMI_DRIVERS:-}" = 1 ] && have modprobe; then
    modprobe -q ipmi_si 2>/dev/null
    modprobe -q ipmi_devintf 2>/dev/null
  fi
  for ch in 1 2 3 4 5 6 7 8; do
    timeout 20 ipmitool lan print "$ch" >"$TMP.bmc" 2>/dev/null || continue
    grep -q '^MAC Address' "$TMP.bmc" || continue
    J=
    field() { awk -v k="$1" 'index($0, k) == 1 { sub(/^[^:]*:[ \t]*/, ""); print; exit }' "$TMP.bmc"; }
    ip=$(trim "$(field 'IP Address  ')")
    case $ip in '' | 0.0.0.0) jadd ip null ;; *) jadd_str ip "$ip" 64 ;; esac
    mac=$(lower "$(trim "$(field 'MAC Address')")")
    if is_mac "$mac"; then jadd_str mac "$mac" 64; else jadd mac null; fi
    jadd channel "$ch"
    jadd_str ip_source "$(field 'IP Address Source')" 64
    jadd_str netmask "$(field 'Subnet Mask')" 64
    gw=$(trim "$(field 'Default Gateway IP')")
    [ "$gw" != 0.0.0.0 ] && jadd_str gateway "$gw" 64
    vlan=$(trim "$(field '802.1q VLAN ID')")
    case $vlan in '' | *[!0-9]*) ;; *) jadd vlan "$vlan" ;; esac
    printf '{%s}' "$J"
    return 0
  done
}

# Builds the payload into $TMP.json and sets SERVICE_TAG and PRIMARY_MAC.
build_payload() {
  BOOT_MAC=$(lower "$(cmdline_arg metal.boot_mac)")
  is_mac "$BOOT_MAC" || BOOT_MAC=
  serial=$(dmi product_serial system-serial-number)
  uuid=$(lower "$(dmi product_uuid system-uuid)")
  primary_mac
  if ! is_placeholder_serial "$serial" && is_service_tag "$serial"; then
    SERVICE_TAG=$serial TAG_SOURCE="DMI serial"
  elif is_uuid "$uuid"; then
    SERVICE_TAG=$uuid TAG_SOURCE="SMBIOS UUID (serial ${serial:-empty} is not usable)"
  elif [ -n "$PRIMARY_MAC" ]; then
    SERVICE_TAG=$(printf '%s' "$PRIMARY_MAC" | tr -d ':') TAG_SOURCE="primary MAC (no usable serial or UUID)"
  else
    SERVICE_TAG=
  fi
  J=
  jadd_str manufacturer "$(dmi sys_vendor system-manufacturer)"
  jadd_str model "$(dmi product_name system-product-name)"
  jadd_str serial "$serial"
  is_uuid "$uuid" && jadd_str uuid "$uuid"
  jadd_str board_vendor "$(dmi board_vendor baseboard-manufacturer)"
  jadd_str board_name "$(dmi board_name baseboard-product-name)"
  jadd bios "$(J=; jadd_str vendor "$(dmi bios_vendor bios-vendor)"; jadd_str version "$(dmi bios_version bios-version)"; jadd_str date "$(dmi bios_date bios-release-date)"; printf '{%s}' "$J")"
  jadd cpu "$(cpu_json)"
  jadd memory "$(memory_json)"
  jadd disks "$(disks_json)"
  lldp_collect
  jadd nics "$(nics_json)"
  jadd gpus "$(gpus_json)"
  bmc=$(bmc_json)
  [ -n "$bmc" ] && jadd bmc "$bmc"
  if ! printf '{"service_tag":%s,"mac_address":%s,"hardware":{%s}}\n' "$(js "$SERVICE_TAG" 64)" "$(js "$PRIMARY_MAC" 64)" "$J" >"$TMP.json"; then
    say "cannot write $TMP.json; set TMPDIR to a writable directory"
    return 1
  fi
  if have jq && ! jq -e . "$TMP.json" >/dev/null 2>&1; then
    say "internal error: the payload is not valid JSON"
    return 1
  fi
}

# post URL TOKEN: one attempt; sets HTTP_CODE (empty when no answer) and leaves the body in $TMP.resp.
post() {
  HTTP_CODE=
  : >"$TMP.resp"
  if have curl; then
    set -- -sS --noproxy '*' --max-time 30 -o "$TMP.resp" -w '%{http_code}' -H 'Content-Type: application/json' \
      ${2:+-H} ${2:+"X-Metal-Enroll-Token: $2"} --data-binary "@$TMP.json" "$1"
    HTTP_CODE=$(curl "$@" 2>"$TMP.err")
    [ "$HTTP_CODE" = 000 ] && HTTP_CODE=
  else
    set -- -S -Y off -O "$TMP.resp" --header 'Content-Type: application/json' \
      ${2:+--header} ${2:+"X-Metal-Enroll-Token: $2"} --post-file "$TMP.json" "$1"
    timeout 30 wget "$@" 2>"$TMP.err"
    HTTP_CODE=$(awk 'match($0, /HTTP\/[0-9.]+ [0-9][0-9][0-9]/) { split(substr($0, RSTART), p, " "); c = p[2] } END { print c }' "$TMP.err")
  fi
}

response_field() {
  if have jq; then jq -r ".$1 // empty" "$TMP.resp" 2>/dev/null
  else sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$TMP.resp" | head -n 1; fi
}

enroll() {
  url=$(cmdline_arg enrollment_url) || { say "no enrollment_url= on the kernel command line; cannot enroll"; return 2; }
  if ! printf '%s' "$url" | grep -Eq '^https?://[][A-Za-z0-9.:-]+(/[A-Za-z0-9._~/%-]*)?$'; then
    say "enrollment_url is not a plain http(s) URL; refusing to use it"
    return 2
  fi
  token=$(cmdline_arg metal.enroll_token) || token=
  if [ -n "$token" ] && ! printf '%s' "$token" | grep -Eq '^[A-Za-z0-9._~-]{16,128}$'; then
    say "metal.enroll_token is malformed; refusing to send it"
    return 2
  fi
  build_payload || return 2
  if [ -z "$SERVICE_TAG" ] || [ -z "$PRIMARY_MAC" ]; then say "no usable serial, UUID or network interface; cannot enroll"; return 2; fi
  say "service tag $SERVICE_TAG from the $TAG_SOURCE; primary MAC $PRIMARY_MAC from $PRIMARY_SOURCE"
  say "posting to $url"
  start=$(date +%s)
  delay=1
  attempt=0
  while :; do
    attempt=$((attempt + 1))
    post "$url" "$token"
    case $HTTP_CODE in
      200 | 201)
        how="known machine, hardware refreshed"
        [ "$HTTP_CODE" = 201 ] && how="new machine"
        say "ENROLLED: $SERVICE_TAG ($how; machine $(response_field id), status $(response_field status))"
        return 0
        ;;
      408 | 425 | 429 | 5?? | '')
        reason=${HTTP_CODE:+HTTP $HTTP_CODE}
        reason=${reason:-$(head -n 1 "$TMP.err" 2>/dev/null)}
        reason="attempt $attempt: ${reason:-no answer}"
        ;;
      *)
        # The server saw the request and refused it (wrong token, a payload it rejects): it stays
        # refused until someone changes the server, so say why on every console and keep asking.
        reason="ENROLLMENT REFUSED (attempt $attempt): HTTP $HTTP_CODE $(head -c 400 "$TMP.resp" 2>/dev/null)"
        ;;
    esac
    elapsed=$(($(date +%s) - start))
    if [ "$TIMEOUT" -gt 0 ] && [ "$elapsed" -ge "$TIMEOUT" ]; then
      say "$reason"
      say "ENROLLMENT FAILED after $attempt attempts in ${elapsed}s (METAL_AGENT_TIMEOUT=$TIMEOUT)"
      return 1
    fi
    if [ "$TIMEOUT" -gt 0 ] && [ "$delay" -gt $((TIMEOUT - elapsed)) ]; then delay=$((TIMEOUT - elapsed)); fi
    say "$reason; retrying in ${delay}s"
    sleep "$delay"
    delay=$((delay * 2))
    [ "$delay" -gt 30 ] && delay=30
  done
}

cleanup() { rm -f "$TMP.json" "$TMP.resp" "$TMP.err" "$TMP.nics" "$TMP.bmc" "$TMP.lldp"; }
trap cleanup EXIT
case $TIMEOUT in *[!0-9]*) TIMEOUT=0 ;; esac
CONSOLES=$(console_files)

PRINT_ONLY=
case ${1:-} in
  --print)
    PRINT_ONLY=1
    build_payload || exit 2
    cat "$TMP.json"
    exit 0
    ;;
  '') ;;
  *)
    echo "usage: metal-agent.sh [--print]" >&2
    exit 2
    ;;
esac

[ -z "$ROOT" ] && [ "${METAL_AGENT_NO_POWEROFF:-}" != 1 ] && LOAD_IPMI_DRIVERS=1
enroll
status=$?
if [ "$status" != 0 ]; then
  # Never powered off after a failure: the reason stays on the screen and the serial console.
  say "NOT ENROLLED (exit status $status); this machine stays on so the reason above can be read"
  exit "$status"
fi
after=$(cmdline_arg metal.after) || after=poweroff
case $after in reboot | poweroff | hold) ;; *) say "metal.after=$after is not reboot, poweroff or hold; powering off"; after=poweroff ;; esac
cmdline_arg metal.agent_stay >/dev/null && after=hold
case $after in
  hold) say "enrolled; staying on (metal.after=hold)"; exit 0 ;;
  reboot) say "enrolled; rebooting (metal.after=reboot): the boot server holds this machine until its image is built" ;;
  poweroff) say "enrolled; powering off (metal.after=poweroff)" ;;
esac
if [ "${METAL_AGENT_NO_POWEROFF:-}" = 1 ] || [ -n "$ROOT" ]; then
  exit 0
fi
sync
if [ "$after" = reboot ]; then reboot -f; else poweroff -f; fi
