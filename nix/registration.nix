# The NixOS registration image: a netboot kernel and initrd whose one job is to run the registration
# agent (src/registration/agent/metal-agent.sh). The agent posts this machine's hardware to the
# enrollment_url= the boot server puts on the kernel command line, prints the outcome on every console
# and then does what metal.after= says (reboot, poweroff or hold).
#
#   nix-build nix/registration.nix -o result     # result/{bzImage,initrd,boot.json}
#   metal image build-registration               # builds it and publishes METAL_IMAGES_DIR/registration/
#
# Its output has the interface of a machine image: bzImage, initrd and boot.json ({init, kernel_params,
# nixpkgs}). `metal image build-registration` calls it with the arguments of the Nix entry interface; it
# uses `configuration` (an extra NixOS module, e.g. firmware or drivers a site needs), `hostname`,
# `consoles` and the nixpkgs arguments, and ignores the rest. docs/builder.md cites the nixpkgs files
# and options each choice below relies on.
{ nixpkgsUrl ? null
, nixpkgsSha256 ? null
  # METAL_NIXPKGS: a tarball pinned by its hash, else <nixpkgs> (NIX_PATH, or -I nixpkgs=<path>).
, nixpkgs ? (if nixpkgsUrl == null then <nixpkgs> else builtins.fetchTarball { url = nixpkgsUrl; sha256 = nixpkgsSha256; })
, system ? "x86_64-linux"
, configuration ? null
, hostname ? "metal-registration"
  # METAL_CONSOLE: kernel consoles, space-separated; the last one is /dev/console.
, consoles ? "tty0 ttyS0,115200 ttyS1,115200"
, ...
}:
let
  agentScript = ../src/registration/agent/metal-agent.sh;
  consoleList = builtins.filter (c: builtins.isString c && c != "") (builtins.split " +" consoles);

  registrationModule = { config, lib, pkgs, modulesPath, ... }: {
    # netboot.nix and the minimal profile only: netboot-minimal.nix would bring in
    # profiles/installation-device.nix (autologin, empty root password, sshd, a nixpkgs copy).
    imports = [
      (modulesPath + "/installer/netboot/netboot.nix")
      (modulesPath + "/profiles/minimal.nix")
    ];

    networking.hostName = lib.mkDefault hostname;
    # DHCP on every interface; the agent itself waits for the enrollment URL to answer.
    networking.useDHCP = true;
    networking.firewall.enable = false;
    hardware.enableRedistributableFirmware = true;

    boot.kernelParams = map (c: "console=${c}") consoleList ++ [ "panic=30" ];

    # Nobody logs in: no passwords, no SSH, no automatic console login. users-groups.nix asserts that
    # root or a wheel user can log in when users are immutable; allowNoPasswordLogin says we mean it.
    users.mutableUsers = false;
    users.allowNoPasswordLogin = true;
    users.users.root.hashedPassword = "!";
    services.openssh.enable = false;
    services.getty.autologinUser = null;

    # LLDP: the agent asks lldpd which switch and port each NIC is cabled to (docs/fleet.md).
    services.lldpd.enable = true;

    systemd.services.metal-agent = {
      description = "Metal Enrollment registration agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" "lldpd.service" ];
      after = [ "network-online.target" "lldpd.service" ];
      # busybox is left out on purpose: its applets would shadow the richer tools.
      path = [
        pkgs.coreutils pkgs.gawk pkgs.gnused pkgs.gnugrep
        pkgs.dmidecode pkgs.util-linux pkgs.ethtool pkgs.pciutils pkgs.jq pkgs.curl
        pkgs.ipmitool pkgs.smartmontools pkgs.kmod pkgs.lldpd
        config.systemd.package
      ];
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${pkgs.runtimeShell} ${agentScript}";
        # The agent writes its outcome on every console of the kernel line itself.
        StandardOutput = "journal";
        StandardError = "journal";
        RemainAfterExit = true;
        # It keeps asking until the server accepts it: no start timeout.
        TimeoutStartSec = "infinity";
      };
    };

    system.stateVersion = "24.05";
  };

  eval = import (nixpkgs + "/nixos/lib/eval-config.nix") {
    inherit system;
    modules = [ registrationModule ] ++ (if configuration == null then [ ] else [ configuration ]);
  };
  inherit (eval) config pkgs;
  build = config.system.build;
  bootJson = pkgs.writeText "boot.json" (builtins.toJSON {
    init = "${build.toplevel}/init";
    kernel_params = config.boot.kernelParams;
    nixpkgs = {
      # toString: the path as text, never a copy of the tree in the store.
      source = if nixpkgsUrl == null then toString nixpkgs else nixpkgsUrl;
      sha256 = nixpkgsSha256;
      version = config.system.nixos.version;
      revision = config.system.nixos.revision;
    };
  });
in
pkgs.runCommand "metal-registration-image" { } ''
  mkdir -p $out
  ln -s ${build.kernel}/${config.system.boot.loader.kernelFile} $out/bzImage
  ln -s ${build.netbootRamdisk}/initrd $out/initrd
  cp ${bootJson} $out/boot.json
''
