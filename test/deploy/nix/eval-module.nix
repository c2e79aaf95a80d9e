# Evaluates nix/module.nix without nixpkgs: a small stand-in for the parts of `lib` and `pkgs` the module
# uses, option defaults applied by hand, mkIf and mkMerge resolved. Returns the systemd units, users,
# timers, tmpfiles rules and failed assertions as JSON (test/deploy/nixos-module.test.ts).
{ settings ? "{}", packagePath ? "/nix/store/metal-enrollment" }:
let
  userConfig = builtins.fromJSON settings;
  isMkIf = v: builtins.isAttrs v && (v._type or "") == "if";
  isMkMerge = v: builtins.isAttrs v && (v._type or "") == "merge";
  # Lists concatenate, attribute sets merge deeply, as the module system does for these options.
  merge = a: b:
    if builtins.isList a && builtins.isList b then a ++ b
    else if builtins.isAttrs a && builtins.isAttrs b then
      builtins.foldl' (acc: name: acc // { ${name} = if acc ? ${name} then merge acc.${name} b.${name} else b.${name}; }) a (builtins.attrNames b)
    else b;
  resolve = v:
    if isMkIf v then (if v.condition then resolve v.content else { })
    else if isMkMerge v then builtins.foldl' (acc: x: merge acc (resolve x)) { } v.contents
    else if builtins.isAttrs v && !(v ? outPath) then builtins.mapAttrs (_: resolve) v
    else v;
  lib = rec {
    mkOption = o: o // { _type = "option"; };
    mkEnableOption = description: mkOption { default = false; inherit description; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    types = {
      package = "package"; str = "str"; int = "int"; bool = "bool";
      listOf = t: "listOf ${t}"; enum = vs: "enum"; attrsOf = t: "attrsOf"; oneOf = ts: "oneOf"; nullOr = t: "nullOr ${t}";
    };
    filterAttrs = pred: set: builtins.listToAttrs (builtins.filter (x: pred x.name x.value) (map (name: { inherit name; value = set.${name}; }) (builtins.attrNames set)));
    mapAttrsToList = f: set: map (name: f name set.${name}) (builtins.attrNames set);
    concatStrings = builtins.concatStringsSep "";
    concatStringsSep = builtins.concatStringsSep;
    optionals = cond: list: if cond then list else [ ];
    mapAttrs = builtins.mapAttrs;
  };
  pkgs = {
    path = "/nix/store/nixpkgs";
    util-linux = "/nix/store/util-linux";
    qemu_kvm = "/nix/store/qemu-kvm";
    sbsigntool = "/nix/store/sbsigntool";
    ipxe = "/nix/store/ipxe";
    writeShellScript = name: text: builtins.toFile name text;
  };
  package = { outPath = packagePath; };
  module = import ../../../nix/module.nix;
  declared = (module { inherit config lib pkgs; }).options.services.metal-enrollment;
  defaults = builtins.mapAttrs (_: o: o.default or null) declared;
  cfg = defaults // { inherit package; } // userConfig;
  config = {
    services.metal-enrollment = cfg;
    nix.package = "/nix/store/nix";
  };
  result = resolve (module { inherit config lib pkgs; }).config;
in
{
  options = builtins.attrNames declared;
  services = builtins.mapAttrs (_: s: {
    inherit (s) description;
    user = s.serviceConfig.User;
    execStart = s.serviceConfig.ExecStart;
    credentials = s.serviceConfig.LoadCredential;
    environment = s.environment;
    requires = s.requires or [ ];
    path = s.path or [ ];
    groups = s.serviceConfig.SupplementaryGroups or [ ];
    capabilities = s.serviceConfig.AmbientCapabilities or [ ];
    boundingSet = s.serviceConfig.CapabilityBoundingSet or null;
    addressFamilies = s.serviceConfig.RestrictAddressFamilies;
    start = builtins.readFile (builtins.head (builtins.split " " s.serviceConfig.ExecStart));
  }) (result.systemd.services or { });
  timers = builtins.mapAttrs (_: t: { onCalendar = t.timerConfig.OnCalendar; wantedBy = t.wantedBy; }) (result.systemd.timers or { });
  users = builtins.attrNames (result.users.users or { });
  tmpfiles = result.systemd.tmpfiles.rules or [ ];
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) (result.assertions or [ ]));
  firewall = result.networking.firewall.allowedTCPPorts or [ ];
  firewallUdp = result.networking.firewall.allowedUDPPorts or [ ];
  firewallInterfaces = result.networking.firewall.interfaces or { };
}
