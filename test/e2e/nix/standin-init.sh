#!/bin/sh
# /init of the stand-in image: comes up, names its hostname and build on the console, reports booted
# (POST <metal.boot_url>/api/v1/machines/<metal.service_tag>/booted), then powers off. For rollout tests,
# the hostname chooses two behaviours: `*-noreport` never reports (an image that does not come up), and
# `*-agent*` then asks for a reboot request every 2 s for 150 s, as nix/netboot.nix's
# metal-reboot-request does every minute, and reboots when told (QEMU runs with -no-reboot: the VM ends).
. /etc/metal/bring-up.sh
hostname -F /etc/hostname

boot_url=''
tag=''
build=''
token=''
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    metal.boot_url=*) boot_url=${arg#*=} ;;
    metal.service_tag=*) tag=${arg#*=} ;;
    metal.build_id=*) build=${arg#*=} ;;
    metal.boot_token=*) token=${arg#*=} ;;
  esac
done
echo "metal-standin: booted $(hostname) build $build"

valid=yes
case "$boot_url" in http://*|https://*) ;; *) valid=no ;; esac
case "$boot_url" in *[!A-Za-z0-9:/._~%[\]-]*) valid=no ;; esac
case "$tag" in ''|*[!A-Za-z0-9._-]*) valid=no ;; esac
case "$build" in ''|*[!0-9]*) valid=no ;; esac
case "$token" in ''|*[!A-Za-z0-9._~=+/-]*) valid=no ;; esac
case "$(hostname)" in
  *-noreport)
    echo "metal-standin: this image never reports (its hostname says so)"
    valid=no ;;
esac
if [ "$valid" = yes ]; then
  printf '{"build_id": %s, "token": "%s"}\n' "$build" "$token" > /tmp/booted.json
  attempt=1
  while :; do
    if wget -q -O /tmp/booted.out --header 'Content-Type: application/json' --post-file /tmp/booted.json "$boot_url/api/v1/machines/$tag/booted"; then
      echo "metal-standin: booted report accepted: $(cat /tmp/booted.out)"
      break
    fi
    if [ "$attempt" -ge 5 ]; then
      echo "metal-standin: booted report failed $attempt times; giving up"
      break
    fi
    echo "metal-standin: booted report failed (attempt $attempt); retrying"
    sleep "$attempt"
    attempt=$((attempt + 1))
  done
  case "$(hostname)" in
    *-agent*)
      polls=0
      while [ "$polls" -lt 75 ]; do
        sleep 2
        if wget -q -O /tmp/reboot.out "$boot_url/api/v1/machines/$tag/reboot-request?build_id=$build&token=$token" && grep -q reboot /tmp/reboot.out; then
          echo "metal-standin: the boot server has another image for $tag; rebooting"
          reboot -f
        fi
        polls=$((polls + 1))
      done
      echo "metal-standin: no reboot request; powering off" ;;
  esac
else
  echo "metal-standin: kernel line lacks valid metal.boot_url, metal.service_tag, metal.build_id, metal.boot_token, or it never reports; not reporting"
fi
poweroff -f
