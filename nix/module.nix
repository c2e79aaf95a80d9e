# NixOS module: services.metal-enrollment. The API and the boot server run in one unit as the user
# `metal`; the builder runs in its own unit as the user `metal-builder` and builds through the host's
# Nix daemon (its sandbox, build users and store), with this system's nixpkgs as <nixpkgs>.
#
#   imports = [ /opt/metal/nix/module.nix ];
#   services.metal-enrollment = {
#     enable = true;
#     package = metal-enrollment;              # bin/metal of this project (docs/deploy.md)
#     settings.METAL_BOOT_URL = "http://10.0.0.5:8081";
#     settings.METAL_DATABASE_URL = "postgres://metal@db.example.com:5432/metal";
#     secretKeyFile = "/run/secrets/metal-secret-key";
#     openFirewall = true;
#   };
#
# Secret files are read by systemd (LoadCredential) and never enter the Nix store.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.metal-enrollment;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;

  # The builder and the pxe role each have a unit of their own (another user; a capability).
  serverRoles = builtins.filter (r: r != "builder" && r != "pxe") cfg.roles;
  runsBuilder = builtins.elem "builder" cfg.roles;
  runsPxe = builtins.elem "pxe" cfg.roles;
  proxyDhcpInterface = cfg.settings.METAL_PROXYDHCP_INTERFACE or null;

  # Secret files by the credential name they are loaded under, and the setting each one fills.
  secrets = lib.filterAttrs (_: s: s.file != null) {
    secret-key = { file = cfg.secretKeyFile; key = "METAL_SECRET_KEY"; };
    database-url = { file = cfg.databaseUrlFile; key = "METAL_DATABASE_URL"; };
    admin-password = { file = cfg.adminPasswordFile; key = "METAL_ADMIN_PASSWORD"; };
    enroll-token = { file = cfg.enrollTokenFile; key = "METAL_ENROLL_TOKEN"; };
  };

  # Exports each loaded credential as its setting, then runs metal with the unit's arguments.
  start = pkgs.writeShellScript "metal-enrollment-start" ''
    set -eu
    ${lib.concatStrings (lib.mapAttrsToList (name: s: ''
      ${s.key}="$(cat "$CREDENTIALS_DIRECTORY/${name}")"
      export ${s.key}
    '') secrets)}
    exec ${cfg.package}/bin/metal "$@"
  '';

  bootCheck = (toString (cfg.settings.METAL_BUILD_BOOT_CHECK or "off")) != "off";
  # METAL_SECURE_BOOT_KEY: kernels and iPXE EFI binaries are signed with sbsign.
  secureBoot = cfg.settings ? METAL_SECURE_BOOT_KEY;

  environment = {
    METAL_DATA_DIR = cfg.dataDir;
    METAL_IMAGES_DIR = cfg.imagesDir;
    # The boot role serves these at /ipxe/ (UEFI HTTP boot) and the pxe role over TFTP. nixpkgs' ipxe
    # puts undionly.kpxe, ipxe.efi and snp.efi at the top of its output (pkgs/by-name/ip/ipxe/package.nix).
    METAL_IPXE_DIR = "${pkgs.ipxe}";
  } // lib.mapAttrs (_: toString) cfg.settings;

  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectControlGroups = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
    ReadWritePaths = [ cfg.dataDir cfg.imagesDir ];
    # Shared through the group: the builder writes images, the boot server reads them.
    UMask = "0007";
    LoadCredential = lib.mapAttrsToList (name: s: "${name}:${s.file}") secrets;
    Restart = "on-failure";
    RestartSec = "2s";
    # Exit 2 is a setting that is invalid; the message names its key. Restarting would not help.
    RestartPreventExitStatus = 2;
    TimeoutStopSec = "40s";
    LimitNOFILE = 65536;
  };

  # A unit running `metal serve --roles <roles>` as metal once the migrations ran, with `extra` service
  # settings. METAL_SECURE_BOOT_KEY: the boot and pxe roles sign the iPXE EFI binaries they hand out.
  serveUnit = description: roles: extra: {
    inherit description environment;
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" "postgresql.service" "metal-enrollment-migrate.service" ];
    wants = [ "network-online.target" ];
    requires = [ "metal-enrollment-migrate.service" ];
    path = lib.optionals secureBoot [ pkgs.sbsigntool ];
    serviceConfig = hardening // {
      Type = "exec";
      User = "metal";
      Group = "metal";
      ExecStart = "${start} serve --roles ${lib.concatStringsSep "," roles}";
    } // extra;
  };
in
{
  options.services.metal-enrollment = {
    enable = mkEnableOption "Metal Enrollment, bare-metal provisioning for NixOS fleets";

    package = mkOption {
      type = types.package;
      description = "The Metal Enrollment package; its `bin/metal` is run.";
    };

    roles = mkOption {
      type = types.listOf (types.enum [ "api" "boot" "builder" "pxe" ]);
      default = [ "api" "boot" "builder" ];
      example = [ "boot" "pxe" ];
      description = ''
        Roles on this machine. `api` and `boot` share one unit; `builder` has its own, and so has `pxe`
        (proxyDHCP on settings.METAL_PROXYDHCP_INTERFACE and TFTP, with CAP_NET_BIND_SERVICE alone).
      '';
    };

    settings = mkOption {
      type = types.attrsOf (types.oneOf [ types.str types.int ]);
      default = { };
      example = { METAL_BOOT_URL = "http://10.0.0.5:8081"; METAL_BUILD_CONCURRENCY = 2; };
      description = "METAL_* settings (README.md, Configuration). Secrets belong in the *File options.";
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/metal-enrollment";
      description = "METAL_DATA_DIR: the SQLite file (when no database URL is set) and build work space.";
    };

    imagesDir = mkOption {
      type = types.str;
      default = "${cfg.dataDir}/images";
      defaultText = lib.literalExpression ''"''${config.services.metal-enrollment.dataDir}/images"'';
      description = "METAL_IMAGES_DIR: published images, written by builders, served by boot servers.";
    };

    secretKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/metal-secret-key";
      description = ''
        File holding METAL_SECRET_KEY (32 bytes as hex, `openssl rand -hex 32`). Needed when the
        builder runs beside other roles: both users must share the key.
      '';
    };

    databaseUrlFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "File holding METAL_DATABASE_URL, for a URL with a password.";
    };

    adminPasswordFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "File holding METAL_ADMIN_PASSWORD, the first admin's password.";
    };

    enrollTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "File holding METAL_ENROLL_TOKEN.";
    };

    backupDir = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/backups/metal-enrollment";
      description = ''
        When set, `metal backup` writes the whole database into this directory on `backupSchedule`
        (metal-<UTC time>.gz, readable by metal only), keeping the newest `backupKeep`. Copy it off the
        machine, and keep the secret key apart from it (docs/deploy.md, Backups).
      '';
    };

    backupSchedule = mkOption {
      type = types.str;
      default = "daily";
      description = "When backups run: a systemd calendar expression (OnCalendar).";
    };

    backupKeep = mkOption {
      type = types.int;
      default = 14;
      description = "Backups kept in backupDir; older ones are removed after each new one.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the API (8080) and boot server (8081) ports; with the pxe role, UDP 67, 69 and 4011 on
        METAL_PROXYDHCP_INTERFACE (without one, UDP 69 on every interface: TFTP only).
      '';
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = !(runsBuilder && serverRoles != [ ]) || cfg.secretKeyFile != null;
          message = "services.metal-enrollment: the builder runs as its own user; set secretKeyFile so both units share METAL_SECRET_KEY.";
        }
      ];

      users.groups.metal = { };
      users.users.metal = {
        isSystemUser = true;
        group = "metal";
        home = cfg.dataDir;
      };

      systemd.tmpfiles.rules = [
        "d ${cfg.dataDir} 2770 metal metal -"
        "d ${cfg.imagesDir} 2770 metal metal -"
      ];

      systemd.services.metal-enrollment-migrate = {
        description = "Metal Enrollment database migrations";
        after = [ "network-online.target" "postgresql.service" ];
        wants = [ "network-online.target" ];
        inherit environment;
        serviceConfig = hardening // {
          Type = "oneshot";
          RemainAfterExit = true;
          User = "metal";
          Group = "metal";
          ExecStart = "${start} migrate";
          Restart = "no";
        };
      };

      networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall [ 8080 8081 ];
    }

    (mkIf (cfg.backupDir != null) {
      assertions = [
        {
          assertion = builtins.match "/[^[:space:]\"'\\]+" cfg.backupDir != null && cfg.backupKeep >= 1;
          message = "services.metal-enrollment: backupDir must be an absolute path without spaces or quotes, and backupKeep 1 or more.";
        }
      ];

      systemd.tmpfiles.rules = [ "d ${cfg.backupDir} 0700 metal metal -" ];

      systemd.services.metal-enrollment-backup = {
        description = "Metal Enrollment database backup";
        after = [ "network-online.target" "postgresql.service" "metal-enrollment-migrate.service" ];
        wants = [ "network-online.target" ];
        inherit environment;
        serviceConfig = hardening // {
          Type = "oneshot";
          User = "metal";
          Group = "metal";
          ExecStart = "${start} backup ${cfg.backupDir} --keep ${toString cfg.backupKeep}";
          # SQLite readers write the database's -shm file: the data directory stays writable.
          ReadWritePaths = [ cfg.dataDir cfg.backupDir ];
          UMask = "0077";
          Nice = 10;
          IOSchedulingClass = "idle";
          TimeoutStartSec = "1h";
          Restart = "no";
        };
      };

      systemd.timers.metal-enrollment-backup = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = cfg.backupSchedule;
          RandomizedDelaySec = "30min";
          Persistent = true;
        };
      };
    })

    (mkIf (serverRoles != [ ]) {
      systemd.services.metal-enrollment = serveUnit "Metal Enrollment (${lib.concatStringsSep ", " serverRoles})" serverRoles { };
    })

    (mkIf runsPxe {
      systemd.services.metal-enrollment-pxe = serveUnit "Metal Enrollment PXE services (proxyDHCP and TFTP)" [ "pxe" ] {
        # Ports 67, 69 and 4011 are below 1024: this one capability, and no other.
        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];
        # The role reads its interface's address; getifaddrs asks the kernel over netlink.
        RestrictAddressFamilies = hardening.RestrictAddressFamilies ++ [ "AF_NETLINK" ];
      };

      # networking.firewall.interfaces.<name>.allowedUDPPorts (nixos/modules/services/networking/firewall.nix).
      networking.firewall = if proxyDhcpInterface != null
        then { interfaces.${proxyDhcpInterface}.allowedUDPPorts = lib.optionals cfg.openFirewall [ 67 69 4011 ]; }
        else { allowedUDPPorts = lib.optionals cfg.openFirewall [ 69 ]; };
    })

    (mkIf runsBuilder {
      users.users.metal-builder = {
        isSystemUser = true;
        group = "metal";
        home = "${cfg.dataDir}/builder";
      };

      systemd.tmpfiles.rules = [ "d ${cfg.dataDir}/builder 0700 metal-builder metal -" ];

      systemd.services.metal-enrollment-builder = {
        description = "Metal Enrollment image builder";
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" "postgresql.service" "nix-daemon.service" "metal-enrollment-migrate.service" ];
        wants = [ "network-online.target" "nix-daemon.service" ];
        requires = [ "metal-enrollment-migrate.service" ];
        # METAL_BUILD_BOOT_CHECK boots each image in QEMU (qemu_kvm: this host's architecture only),
        # under KVM through the kvm group (docs/builder.md).
        path = [ config.nix.package pkgs.util-linux ] ++ lib.optionals bootCheck [ pkgs.qemu_kvm ] ++ lib.optionals secureBoot [ pkgs.sbsigntool ];
        environment = environment // {
          # Through the daemon, with /etc/nix/nix.conf as it is (sandbox, caches, build users).
          NIX_REMOTE = "daemon";
          NIX_CONFIG = "";
          NIX_PATH = "nixpkgs=${pkgs.path}";
          HOME = "${cfg.dataDir}/builder";
        };
        serviceConfig = hardening // {
          Type = "exec";
          User = "metal-builder";
          Group = "metal";
          SupplementaryGroups = lib.optionals bootCheck [ "kvm" ];
          ExecStart = "${start} builder";
        };
      };
    })
  ]);
}
