# Bootable stand-in for nix/netboot.nix in end-to-end tests. It takes the same arguments and produces the
# same files (bzImage, initrd, boot.json), but builds them from host packages (the cloud kernel,
# busybox-static and its virtio modules), since no nixpkgs is available offline. Needs sandbox = false.
# Its /init reports `booted` to the boot server with the build id and token from the kernel line.
{ configuration, hostname, serviceTag ? "", system ? builtins.currentSystem }:

builtins.derivation {
  name = "metal-standin-netboot-${hostname}";
  inherit system hostname serviceTag configuration;
  builder = "/bin/sh";
  args = [ ./standin-builder.sh ];
  init = ./standin-init.sh;
  bringUp = ../../../src/registration/lab/initrd-files/bring-up.sh;
  udhcpcScript = ../../../src/registration/lab/initrd-files/udhcpc.script;
  modules = "virtio_pci virtio_net virtio_blk";
  PATH = "/usr/bin:/bin:/usr/sbin:/sbin";
}
