# The image entry of Metal Enrollment's builder: a NixOS system that boots from the network.
#
#   nix-build netboot.nix --arg configuration <dir>/configuration.nix \
#     --argstr hostname web-01 --argstr serviceTag ABC123 -o <dir>/result
#
# result/ holds bzImage, initrd and boot.json ({ init, kernel_params, nixpkgs }). The image runs a small
# service that tells the boot server it came up, with the build id and per-build token the boot
# server put on its kernel line (metal.boot_url, metal.service_tag, metal.build_id, metal.boot_token).
# When the configuration sets `metal.healthCheck` (the builder writes the profile's health check there),
# the service runs that command first and sends its result with the report.
# The builder also passes `consoles` (METAL_CONSOLE) and, with METAL_NIXPKGS a tarball, `nixpkgsUrl`
# and `nixpkgsSha256`. docs/builder.md cites the nixpkgs files and options each choice relies on.
{ configuration
, hostname
, serviceTag
, nixpkgsUrl ? null
, nixpkgsSha256 ? null
  # METAL_NIXPKGS: a tarball pinned by its hash, else <nixpkgs> (NIX_PATH, or -I nixpkgs=<path>).
, nixpkgs ? (if nixpkgsUrl == null then <nixpkgs> else builtins.fetchTarball { url = nixpkgsUrl; sha256 = nixpkgsSha256; })
, system ? "x86_64-linux"
  # METAL_CONSOLE: kernel consoles, space-separated; the last one is /dev/console.
, consoles ? "tty0 ttyS0,115200 ttyS1,115200"
}:
let
  # Shell lines shared by the image's services: read url, tag, build and token from metal.* on the
  # kernel line (put there by the boot script) and check their characters before any use.
  kernelLineParams = name: ''
    param() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
    url=$(param metal.boot_url)
    tag=$(param metal.service_tag)
    build=$(param metal.build_id)
    token=$(param metal.boot_token)
    if [ -z "$url" ] || [ -z "$tag" ] || [ -z "$build" ] || [ -z "$token" ]; then
      echo "${name}: no metal.* parameters on the kernel line; nothing to do"
      exit 0
    fi
    case "$build" in *[!0-9]*) echo "${name}: bad metal.build_id"; exit 1 ;; esac
    case "$tag$token" in *[!A-Za-z0-9._-]*) echo "${name}: bad metal.service_tag or metal.boot_token"; exit 1 ;; esac
  '';

  # How long the health check has to pass (it is tried again every 5 s until then).
  healthCheckSeconds = 120;

  bootedReport = { config, lib, pkgs, ... }:
    let
      check = config.metal.healthCheck;
      # The command line reaches the shell as the content of a file, never as part of a script's text.
      checkFile = pkgs.writeText "metal-health-check" check;
    in
    {
      options.metal.healthCheck = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "systemctl is-active nginx";
        description = "A command line (sh -c) whose result metal-booted sends with its booted report.";
      };
      config.systemd.services.metal-booted = {
        description = "Report to Metal Enrollment that this image booted";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        path = [ pkgs.coreutils pkgs.curl pkgs.gnused pkgs.jq ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          Restart = "on-failure";
          RestartSec = 10;
        };
        script = ''
          ${kernelLineParams "metal-booted"}
          body="{\"build_id\": $build, \"token\": \"$token\"}"
        '' + lib.optionalString (check != null) ''
          # The health check: tried until it passes or ${toString healthCheckSeconds} s have passed; the
          # last try's exit code (null when stopped by the timeout) and last 2 KiB of output are sent.
          out=$(mktemp)
          start=$(date +%s)
          while :; do
            left=$(( ${toString healthCheckSeconds} - ($(date +%s) - start) ))
            [ "$left" -ge 1 ] || left=1
            code=0
            timeout "$left" sh -c "$(cat ${checkFile})" > "$out" 2>&1 < /dev/null || code=$?
            [ "$code" -eq 0 ] && break
            [ $(( $(date +%s) - start )) -ge ${toString healthCheckSeconds} ] && break
            sleep 5
          done
          ok=false; [ "$code" -eq 0 ] && ok=true
          exit_code=$code; [ "$code" -eq 124 ] && exit_code=null
          tail -c 2048 "$out" > "$out.tail"
          body=$(jq -n -c --argjson build "$build" --arg token "$token" --argjson ok "$ok" \
            --argjson code "$exit_code" --rawfile output "$out.tail" \
            '{build_id: $build, token: $token, health: {ok: $ok, exit_code: $code, output: $output}}')
          rm -f "$out" "$out.tail"
          echo "metal-booted: health check exited $code"
        '' + ''
          curl --fail --silent --show-error --retry 10 --retry-delay 5 --retry-connrefused \
            --header 'Content-Type: application/json' \
            --data "$body" \
            "$url/api/v1/machines/$tag/booted"
          echo "metal-booted: reported build $build of $tag"
        '';
      };
      # Every minute, asks the boot server (with the token its report was accepted with) whether this
      # machine was pointed at another image by a rollout; if so, reboots into it.
      config.systemd.services.metal-reboot-request = {
        description = "Reboot when Metal Enrollment points this machine at another image";
        wantedBy = [ "multi-user.target" ];
        requires = [ "metal-booted.service" ];
        after = [ "metal-booted.service" ];
        path = [ pkgs.coreutils pkgs.curl pkgs.gnused pkgs.systemd ];
        serviceConfig = {
          Restart = "always";
          RestartSec = 60;
        };
        script = ''
          ${kernelLineParams "metal-reboot-request"}
          while sleep 60; do
            code=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 20 \
              "$url/api/v1/machines/$tag/reboot-request?build_id=$build&token=$token" || true)
            if [ "$code" = 200 ]; then
              echo "metal-reboot-request: the boot server has another image for $tag; rebooting"
              systemctl reboot
              exit 0
            fi
          done
        '';
      };
    };

  consoleList = builtins.filter (c: builtins.isString c && c != "") (builtins.split " +" consoles);

  machine = { lib, modulesPath, ... }: {
    # netboot.nix and the minimal profile only: netboot-minimal.nix would bring in
    # profiles/installation-device.nix (autologin, empty root password, sshd, a nixpkgs copy).
    imports = [
      (modulesPath + "/installer/netboot/netboot.nix")
      (modulesPath + "/profiles/minimal.nix")
    ];
    # A default: the machine's own module may set its own host name.
    networking.hostName = lib.mkDefault hostname;
    boot.kernelParams = map (c: "console=${c}") consoleList;
    # What installation-device.nix brought through installer/scan/not-detected.nix: firmware that many
    # server NICs (bnx2x, some Intel and QLogic parts) need. A default the machine's module may turn off.
    hardware.enableRedistributableFirmware = lib.mkDefault true;
    environment.etc."metal/service-tag".text = serviceTag;
  };

  nixos = import (nixpkgs + "/nixos/lib/eval-config.nix") {
    inherit system;
    modules = [
      configuration
      machine
      bootedReport
    ];
  };

  inherit (nixos) config pkgs;
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
pkgs.runCommand "metal-netboot-${hostname}" { } ''
  mkdir -p $out
  ln -s ${build.kernel}/${config.system.boot.loader.kernelFile} $out/bzImage
  ln -s ${build.netbootRamdisk}/initrd $out/initrd
  cp ${bootJson} $out/boot.json
''
