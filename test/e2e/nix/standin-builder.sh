# Builder of standin-netboot.nix: the host's cloud kernel and an initrd of busybox, the virtio drivers
# (dependencies first, as modprobe lists them) and the stand-in /init, with the hostname baked in.
set -eu

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)
kver=${kernel#/boot/vmlinuz-}
echo "standin: kernel $kver, hostname $hostname, service tag $serviceTag"

root=$PWD/root
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" "$root/etc/metal" "$root/lib/modules/$kver"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/${applet%/*}"
  ln -s /bin/busybox "$root/$applet"
done

for module in $modules; do
  modprobe --set-version "$kver" --show-depends "$module"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > module-files
: > "$root/etc/metal/modules"
while read -r file; do
  cp "$file" "$root/lib/modules/$kver/"
  echo "/lib/modules/$kver/${file##*/}" >> "$root/etc/metal/modules"
done < module-files

cp "$bringUp" "$root/etc/metal/bring-up.sh"
cp "$udhcpcScript" "$root/etc/metal/udhcpc.script"
cp "$init" "$root/init"
chmod 755 "$root/init" "$root/etc/metal/udhcpc.script"
printf '%s\n' "$hostname" > "$root/etc/hostname"

mkdir -p "$out"
(cd "$root" && find . | sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n > "$out/initrd"
cp "$kernel" "$out/bzImage"
cp "$configuration" "$out/configuration.nix"
printf '{"init": "/init", "kernel_params": ["console=ttyS0", "panic=-1"]}\n' > "$out/boot.json"
echo "standin: initrd $(wc -c < "$out/initrd") bytes"
