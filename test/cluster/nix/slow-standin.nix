# Stand-in for nix/netboot.nix in the scale-out test: the same arguments and output files, built from host
# tools in a few seconds (so a builder can be killed in the middle of one), printing a line per step.
# Its result depends on the build directory's .nix files (configuration.nix and the machine's files
# below machine/), so every new configuration is a real build. Needs sandbox = false.
{ configuration, hostname, serviceTag, ... }:
builtins.derivation {
  name = "metal-cluster-standin-${hostname}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit hostname serviceTag;
  configDir = builtins.path {
    name = "metal-configuration";
    path = dirOf configuration;
    filter = path: type: type == "directory" || (type == "regular" && builtins.match ".*\\.nix" path != null);
  };
  args = [
    "-ec"
    ''
      for step in 1 2 3 4 5 6; do
        echo "cluster-standin: $hostname step $step of 6"
        sleep 0.5
      done
      mkdir -p "$out"
      printf 'METAL-CLUSTER-KERNEL %s %s\n' "$hostname" "$serviceTag" > "$out/bzImage"
      { printf 'METAL-CLUSTER-INITRD %s\n' "$hostname"; find "$configDir" -name '*.nix' -type f | sort | xargs cat; } > "$out/initrd"
      printf '{"init": "/init", "kernel_params": ["console=ttyS0"]}\n' > "$out/boot.json"
      echo "cluster-standin: $hostname done"
    ''
  ];
}
