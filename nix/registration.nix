# The NixOS registration image: a netboot kernel and initrd whose one job is to run the registration
# agent (src/registration/agent/metal-agent.sh). The agent posts this machine's hardware to the
# enrollment_url= the boot server puts on the kernel command line, prints the outcome on the console
# and powers the machine off.
#
#   nix-build nix/registration.nix -o result     # result/{bzImage,initrd,boot.json}
#   metal image build-registration               # builds it and publishes METAL_IMAGES_DIR/registration/
#
# Its output has the interface of a machine image: bzImage, initrd and boot.json ({init, kernel_params}).
# `metal image build-registration` calls it with the arguments of the Nix entry interface; it uses
# `configuration` (an extra NixOS module, e.g. firmware or drivers a site needs) and `hostname`, and
# ignores the rest.
{ nixpkgs ? <nixpkgs>
, system ? "x86_64-linux"
, configuration ? null
, hostname ? "metal-registration"
, ...
}:
let
  agentScript = ../src/registration/agent/metal-agent.sh;

  registrationModule = { config, pkgs, modulesPath, ... }: {
    imports = [
      "${modulesPath}/installer/netboot/netboot.nix"
      "${modulesPath}/profiles/minimal.nix"
    ];

    networking.hostName = hostname;
    # DHCP on every interface; the agent itself waits for the enrollment URL to answer.
    networking.useDHCP = true;
    networking.firewall.enable = false;
    hardware.enableRedistributableFirmware = true;

    boot.kernelParams = [ "console=ttyS0,115200" "console=tty0" "panic=30" ];

    # Nobody logs in: no passwords, no SSH, no automatic console login.
    users.mutableUsers = false;
    users.users.root.hashedPassword = "!";
    services.openssh.enable = false;
    services.getty.autologinUser = null;

    systemd.services.metal-agent = {
      description = "Metal Enrollment registration agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # busybox is left out on purpose: its applets would shadow the richer tools.
      path = [
        pkgs.coreutils pkgs.gawk pkgs.gnused pkgs.gnugrep
        pkgs.dmidecode pkgs.util-linux pkgs.ethtool pkgs.pciutils pkgs.jq pkgs.curl
        config.systemd.package
      ];
      # Its output already goes to the console through systemd.
      environment.METAL_AGENT_CONSOLE = "";
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${pkgs.runtimeShell} ${agentScript}";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
        RemainAfterExit = true;
      };
    };

    system.stateVersion = "24.05";
  };

  eval = import "${nixpkgs}/nixos/lib/eval-config.nix" {
    inherit system;
    modules = [ registrationModule ] ++ (if configuration == null then [ ] else [ configuration ]);
  };
  pkgs = eval.pkgs;
  build = eval.config.system.build;
  kernelTarget = pkgs.stdenv.hostPlatform.linux-kernel.target;
  bootJson = pkgs.writeText "boot.json" (builtins.toJSON {
    init = "${build.toplevel}/init";
    kernel_params = eval.config.boot.kernelParams;
  });
in
pkgs.runCommand "metal-registration-image" { } ''
  mkdir -p $out
  ln -s ${build.kernel}/${kernelTarget} $out/bzImage
  ln -s ${build.netbootRamdisk}/initrd $out/initrd
  ln -s ${bootJson} $out/boot.json
''
