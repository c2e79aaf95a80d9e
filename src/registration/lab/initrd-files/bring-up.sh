# Sourced by /init: mounts the kernel file systems, loads the drivers listed in /etc/metal/modules
# (dependencies first) and brings eth0 up with DHCP.
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
if ! udhcpc -i eth0 -n -q -t 10 -T 2 -s /etc/metal/udhcpc.script; then
  echo "metal-lab: no DHCP lease on eth0"
fi
