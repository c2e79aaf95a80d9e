import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parseSecretKey } from '../../src/auth/secret-key.ts';
import { CONFIG_KEYS, loadConfig } from '../../src/config/config.ts';
import { parseRoles } from '../../src/server/serve.ts';
import { chooseIsolation } from '../../src/builder/builder.ts';
import {
  kustomizeVersion,
  parseManifests,
  podSpecOf,
  policyProblems,
  referenceProblems,
  renderKustomization,
  schemaProblems,
  type KubeObject,
  type PodSpec,
} from './manifest-checks.ts';
import { unitCapabilities } from '../support/unit-privileges.ts';

const KUBERNETES_DIR = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url));
const OVERLAYS = readdirSync(`${KUBERNETES_DIR}overlays`).sort();

function kustomizeSkipReason(): string | undefined {
  const version = kustomizeVersion();
  if (version && Number(version.split('.')[0]) >= 5) return undefined;
  const reason = version ? `kubectl's kustomize is v${version}; components and labels need v5` : 'kubectl is not installed';
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING Kubernetes manifest tests: ${reason} ***\n`);
  return reason;
}
const skip = kustomizeSkipReason();

function find(objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found;
}

function replicas(objects: KubeObject[], name: string): number {
  return (find(objects, 'Deployment', name).spec as { replicas: number }).replicas;
}

describe('the manifest checks', () => {
  const broken = parseManifests(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers:
        - name: web
          image: nginx:latest
          ports: [{containerPort: eighty}]
          envFrom: [{secretRef: {name: missing}}]
`);

  test('a value of the wrong type fails the schema', async () => {
    const problems = await schemaProblems(broken);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /Deployment\/broken: .*containerPort must be integer/);
  });

  test('an unknown kind fails the schema', async () => {
    const problems = await schemaProblems(parseManifests('apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n'));
    assert.deepEqual(problems, ['Deploymnet/x: unknown apiVersion/kind apps/v1 Deploymnet']);
  });

  test('a latest tag, missing probes, limits and security context are each named', () => {
    const problems = policyProblems(broken).map((p) => p.replace('Deployment/broken container web: ', ''));
    for (const expected of [
      'image "nginx:latest" uses the latest tag',
      'no readinessProbe',
      'no livenessProbe',
      'no cpu in resources.limits',
      'no memory in resources.requests',
      'runAsNonRoot is not true',
      'allowPrivilegeEscalation is not false',
      'readOnlyRootFilesystem is not true',
      'capabilities do not drop ALL',
    ]) {
      assert.ok(problems.includes(expected), `${expected} in ${problems.join('; ')}`);
    }
  });

  test('root is allowed to the pxe DaemonSet alone, on the node\'s network, with NET_BIND_SERVICE as its one capability', () => {
    const pxe = (name: string, hostNetwork: boolean, add: string[]) =>
      parseManifests(`
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ${name}}
spec:
  selector: {matchLabels: {app: pxe}}
  template:
    metadata: {labels: {app: pxe}}
    spec:
      hostNetwork: ${hostNetwork}
      containers:
        - name: pxe
          image: metal-enrollment:1
          readinessProbe: {exec: {command: [x]}}
          livenessProbe: {exec: {command: [x]}}
          resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {cpu: 1m, memory: 1Mi}}
          securityContext: {runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL], add: [${add.join(', ')}]}}
`);
    assert.deepEqual(policyProblems(pxe('metal-pxe', true, ['NET_BIND_SERVICE'])), []);
    assert.deepEqual(policyProblems(pxe('metal-pxe', true, ['NET_BIND_SERVICE', 'NET_RAW'])), [
      'DaemonSet/metal-pxe container pxe: may run as root only with NET_BIND_SERVICE as its one added capability (adds NET_BIND_SERVICE, NET_RAW)',
    ]);
    assert.deepEqual(policyProblems(pxe('metal-pxe', false, ['NET_BIND_SERVICE'])), ["DaemonSet/metal-pxe container pxe: runs as root but not on the node's network"]);
    assert.deepEqual(policyProblems(pxe('other', true, ['NET_BIND_SERVICE'])), [
      'DaemonSet/other container pxe: runAsNonRoot is not true',
      'DaemonSet/other container pxe: runAsUser is not set to a non-root id',
      'DaemonSet/other container pxe: adds capabilities NET_BIND_SERVICE',
    ]);
  });

  test('a selector that misses its pods and a missing Secret are named', () => {
    assert.deepEqual(referenceProblems(broken), [
      'Deployment/broken: its selector does not match its pod template',
      'Deployment/broken: Secret missing is missing',
    ]);
  });
});

describe('the Kubernetes deployment (deploy/kubernetes)', { skip }, () => {
  test('has the overlays single, ha and dev', () => {
    for (const name of ['single', 'ha', 'dev']) assert.ok(OVERLAYS.includes(name), `overlay ${name}`);
  });

  for (const overlay of OVERLAYS) {
    describe(`overlay ${overlay}`, () => {
      let objects: KubeObject[] = [];

      test('renders with kubectl kustomize', { timeout: 60_000 }, () => {
        objects = renderKustomization(`${KUBERNETES_DIR}overlays/${overlay}`);
        assert.ok(objects.length > 10, `${objects.length} objects`);
        for (const o of objects) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'metal', `${o.kind}/${o.metadata.name}`);
      });

      test('every object validates against the Kubernetes API schema of its kind', async () => {
        assert.deepEqual(await schemaProblems(objects), []);
      });

      test('every container: pinned image, probes, requests and limits, non-root and read-only', () => {
        assert.deepEqual(policyProblems(objects), []);
      });

      test('every reference resolves and every selector selects', () => {
        assert.deepEqual(referenceProblems(objects), []);
      });

      test('the settings are keys metal knows, and valid values', () => {
        const config = find(objects, 'ConfigMap', 'metal-config').data ?? {};
        const secret = find(objects, 'Secret', 'metal-secrets').stringData ?? {};
        for (const key of [...Object.keys(config), ...Object.keys(secret)]) {
          assert.ok((CONFIG_KEYS as readonly string[]).includes(key), `${key} is a setting`);
        }
        loadConfig(config);
        if (overlay === 'dev') {
          loadConfig({ ...config, ...secret });
          parseSecretKey(secret.METAL_SECRET_KEY!);
        } else {
          assert.throws(() => parseSecretKey(secret.METAL_SECRET_KEY!), /METAL_SECRET_KEY/, 'the placeholder key is refused at start-up');
        }
      });

      test('the builder can start: through a Nix daemon, or told it may build without one (METAL_BUILD_UNSANDBOXED)', () => {
        const config = find(objects, 'ConfigMap', 'metal-config').data ?? {};
        const [builder] = podSpecOf(find(objects, 'Deployment', 'metal-builder'))!.containers;
        const env = Object.fromEntries((builder!.env ?? []).map((e) => [e.name, e.value ?? '']));
        const daemon = env.NIX_REMOTE === 'daemon';
        // As the builder decides at start (builder/builder.ts): without this it refuses, naming the setting.
        assert.equal(chooseIsolation(loadConfig({ ...config, ...env }), daemon), daemon ? 'daemon' : 'unsandboxed');
        if (daemon) assert.match(JSON.stringify(podSpecOf(find(objects, 'Deployment', 'metal-builder'))), /"mountPath":"\/nix\/var\/nix\/daemon-socket"/);
      });

      test('every metal container runs a metal command with valid roles', () => {
        const commands = new Map<string, string[]>();
        for (const obj of objects) {
          for (const c of podSpecOf(obj)?.containers ?? []) {
            if (!c.image?.includes('metal-enrollment')) continue;
            const args = c.args ?? [];
            commands.set(obj.metadata.name, args);
            assert.ok(['serve', 'boot', 'builder', 'migrate'].includes(args[0] ?? ''), `${obj.metadata.name}: ${args.join(' ')}`);
            if (args[0] === 'serve') parseRoles(args[args.indexOf('--roles') + 1] ?? '');
            if (args[0] === 'builder') assert.match(c.image, /metal-enrollment-builder:/, 'the builder runs the image with Nix');
            else assert.doesNotMatch(c.image, /builder/, 'only the builder carries Nix');
          }
        }
        const expected = ['metal-api', 'metal-boot', 'metal-builder', 'metal-migrate', ...(overlay === 'ha-host-network' ? ['metal-pxe'] : [])];
        assert.deepEqual([...commands.keys()].sort(), expected);
        assert.deepEqual(commands.get('metal-api'), ['serve', '--roles', 'api']);
      });

      test('the API has an Ingress, boot and API their Services, images one ReadWriteMany claim', () => {
        const ingress = find(objects, 'Ingress', 'metal-api');
        assert.match(JSON.stringify(ingress.spec), /"name":"metal-api"/);
        find(objects, 'Service', 'metal-api');
        find(objects, 'Service', 'metal-boot');
        find(objects, 'Job', 'metal-migrate');
        const claim = find(objects, 'PersistentVolumeClaim', 'metal-images');
        const modes = (claim.spec as { accessModes: string[] }).accessModes;
        assert.deepEqual(modes, overlay === 'dev' ? ['ReadWriteOnce'] : ['ReadWriteMany']);
        const policies = objects.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata.name);
        for (const name of ['metal-default-deny', 'metal-api-from-operators', 'metal-boot-from-provisioning']) assert.ok(policies.includes(name), name);
      });

      if (overlay === 'single' || overlay === 'dev') {
        test('one replica of each role and no disruption budget', () => {
          for (const name of ['metal-api', 'metal-boot', 'metal-builder']) assert.equal(replicas(objects, name), 1, name);
          assert.equal(objects.filter((o) => o.kind === 'PodDisruptionBudget').length, 0);
        });
      }

      if (overlay.startsWith('ha')) {
        test('two or more replicas of every role; the API and boot servers keep a disruption budget', () => {
          for (const name of ['metal-api', 'metal-boot', 'metal-builder']) assert.ok(replicas(objects, name) >= 2, name);
          find(objects, 'PodDisruptionBudget', 'metal-api');
          find(objects, 'PodDisruptionBudget', 'metal-boot');
        });
      }

      if (overlay === 'dev') {
        test('PostgreSQL runs in the namespace, reachable only from the workloads', () => {
          find(objects, 'StatefulSet', 'metal-postgres');
          const policy = find(objects, 'NetworkPolicy', 'metal-postgres-from-workloads');
          assert.match(JSON.stringify(policy.spec), /"values":\["api","boot","builder","migrate"\]/);
        });
      } else {
        test('PostgreSQL is external', () => {
          assert.equal(objects.filter((o) => o.kind === 'StatefulSet').length, 0);
        });
      }

      if (overlay === 'ha-host-network') {
        test('boot servers on the nodes\' network, one per node; builders use the node\'s Nix daemon', () => {
          const boot = podSpecOf(find(objects, 'Deployment', 'metal-boot')) as unknown as { hostNetwork: boolean; affinity: unknown };
          assert.equal(boot.hostNetwork, true);
          assert.match(JSON.stringify(boot.affinity), /requiredDuringScheduling/);
          const builder = JSON.stringify(podSpecOf(find(objects, 'Deployment', 'metal-builder')));
          assert.match(builder, /"path":"\/nix\/var\/nix\/daemon-socket"/);
          assert.match(builder, /"name":"NIX_REMOTE","value":"daemon"/);
        });

        test('the pxe role runs on every boot node, on its network, as deploy/systemd/metal-pxe.service grants: NET_BIND_SERVICE alone', () => {
          const daemonSet = find(objects, 'DaemonSet', 'metal-pxe');
          const pxe = podSpecOf(daemonSet) as unknown as PodSpec & { nodeSelector: Record<string, string> };
          const boot = podSpecOf(find(objects, 'Deployment', 'metal-boot')) as unknown as { nodeSelector: Record<string, string> };
          assert.equal(pxe.hostNetwork, true);
          assert.deepEqual(pxe.nodeSelector, boot.nodeSelector, 'on the nodes of the boot servers');
          const [container] = pxe.containers;
          assert.deepEqual(container!.args, ['serve', '--roles', 'pxe']);
          assert.deepEqual(container!.securityContext?.capabilities?.add, unitCapabilities('metal-pxe.service').map((c) => c.replace(/^CAP_/, '')));
          assert.equal(daemonSet.metadata.namespace, 'metal');
        });
      }
    });
  }
});
