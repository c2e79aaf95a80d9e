# Sourced by /init: mounts the kernel file systems, loads the drivers listed in /etc/metal/modules
# (dependencies first), brings every NIC's link up, and DHCP on the NIC that network-booted
# (metal.boot_mac= on the kernel line), else eth0.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/run
ifconfig lo 127.0.0.1 up
while read -r module; do
  [ -n "$module" ] && { insmod "$module" || echo "metal-lab: could not load $module"; }
done < /etc/metal/modules
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ "$tries" -lt 100 ]; do
  usleep 100000
  tries=$((tries + 1))
done
usleep 500000
boot_mac=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^metal\.boot_mac=//p' | tail -n 1 | tr 'A-F' 'a-f')
iface=eth0
for n in /sys/class/net/*; do
  name=${n##*/}
  [ "$name" = lo ] && continue
  ifconfig "$name" up
  [ -n "$boot_mac" ] && [ "$(cat "$n/address")" = "$boot_mac" ] && iface=$name
done
if ! udhcpc -i "$iface" -n -q -t 10 -T 2 -s /etc/metal/udhcpc.script; then
  echo "metal-lab: no DHCP lease on $iface"
fi
