import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

/** One rendered Kubernetes object, as far as the checks read it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  [field: string]: unknown;
}

interface Container {
  name: string;
  image?: string;
  args?: string[];
  readinessProbe?: unknown;
  livenessProbe?: unknown;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  env?: Array<{ name: string; value?: string }>;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  hostNetwork?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }>;
}

/** Kinds that run pods for as long as they are deployed: their containers need probes. */
const LONG_RUNNING = new Set(['Deployment', 'StatefulSet', 'DaemonSet']);

/** Renders a kustomization with `kubectl kustomize`; throws with kubectl's message. */
export function renderKustomization(dir: string): KubeObject[] {
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  if (result.error) throw new Error(`kubectl kustomize ${dir}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

/** Parses a multi-document YAML stream; a YAML error throws. */
export function parseManifests(text: string): KubeObject[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as KubeObject | null;
    return value ? [value] : [];
  });
}

/** Whether `kubectl kustomize` is on this host (with kustomize v5: components, labels). */
export function kustomizeVersion(): string | undefined {
  const result = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) return undefined;
  return /Kustomize Version: v?(\d+\.\d+\.\d+)/.exec(result.stdout)?.[1];
}

/** The pod template of a workload, or undefined for other kinds. */
export function podSpecOf(obj: KubeObject): PodSpec | undefined {
  const spec = obj.spec as { template?: { spec?: PodSpec }; jobTemplate?: { spec?: { template?: { spec?: PodSpec } } } } | undefined;
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet'].includes(obj.kind)) return spec?.template?.spec;
  if (obj.kind === 'CronJob') return spec?.jobTemplate?.spec?.template?.spec;
  return undefined;
}

/** Validates each object against the Kubernetes API schema of its kind (kubernetes-models). */
export async function schemaProblems(objects: KubeObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const obj of objects) {
    const where = `${obj.kind}/${obj.metadata?.name}`;
    const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : [undefined, obj.apiVersion];
    const modulePath = group ? `kubernetes-models/${group}/${version}/${obj.kind}` : `kubernetes-models/${version}/${obj.kind}`;
    let model: new (data: unknown) => { validate(): void };
    try {
      const loaded = (await import(modulePath)) as Record<string, unknown>;
      model = loaded[obj.kind] as typeof model;
      if (typeof model !== 'function') throw new Error('no such model');
    } catch {
      problems.push(`${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new model(obj).validate();
    } catch (err) {
      problems.push(`${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return problems;
}

/**
 * The one container that may run as uid 0: the pxe role binds UDP 67, 69 and 4011 on the node's network,
 * and Kubernetes gives a non-root container no ambient capabilities. It must be on the node's network
 * and add NET_BIND_SERVICE alone (every capability else still dropped).
 */
export const LOW_PORTS_AS_ROOT = { workload: 'DaemonSet/metal-pxe', container: 'pxe' } as const;

/**
 * The house rules for every container: a pinned image (a tag other than `latest`, or a digest), CPU and
 * memory requests and limits, non-root (but LOW_PORTS_AS_ROOT), no privilege escalation, a read-only
 * root file system, every capability dropped; containers of long-running workloads also need readiness
 * and liveness probes.
 */
export function policyProblems(objects: KubeObject[]): string[] {
  const problems: string[] = [];
  for (const obj of objects) {
    const pod = podSpecOf(obj);
    if (!pod) continue;
    const where = `${obj.kind}/${obj.metadata.name}`;
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const at = `${where} container ${c.name}`;
      const image = c.image ?? '';
      const tag = /@sha256:[0-9a-f]{64}$/.test(image) ? 'digest' : /:([^/:]+)$/.exec(image)?.[1];
      if (!tag) problems.push(`${at}: image "${image}" has no tag`);
      else if (tag === 'latest') problems.push(`${at}: image "${image}" uses the latest tag`);
      if (LONG_RUNNING.has(obj.kind)) {
        if (!c.readinessProbe) problems.push(`${at}: no readinessProbe`);
        if (!c.livenessProbe) problems.push(`${at}: no livenessProbe`);
      }
      for (const side of ['requests', 'limits'] as const) {
        for (const resource of ['cpu', 'memory']) {
          if (!c.resources?.[side]?.[resource]) problems.push(`${at}: no ${resource} in resources.${side}`);
        }
      }
      const sc = c.securityContext ?? {};
      const nonRoot = sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
      const user = sc.runAsUser ?? pod.securityContext?.runAsUser;
      const lowPorts = where === LOW_PORTS_AS_ROOT.workload && c.name === LOW_PORTS_AS_ROOT.container;
      if (lowPorts) {
        const added = sc.capabilities?.add ?? [];
        if (added.length !== 1 || added[0] !== 'NET_BIND_SERVICE') problems.push(`${at}: may run as root only with NET_BIND_SERVICE as its one added capability (adds ${added.join(', ') || 'none'})`);
        if (pod.hostNetwork !== true) problems.push(`${at}: runs as root but not on the node's network`);
      } else {
        if (nonRoot !== true) problems.push(`${at}: runAsNonRoot is not true`);
        if (user === undefined || user === 0) problems.push(`${at}: runAsUser is not set to a non-root id`);
        if (sc.capabilities?.add?.length) problems.push(`${at}: adds capabilities ${sc.capabilities.add.join(', ')}`);
      }
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
      if (sc.privileged) problems.push(`${at}: privileged`);
      if (!sc.capabilities?.drop?.includes('ALL')) problems.push(`${at}: capabilities do not drop ALL`);
    }
  }
  return problems;
}

/**
 * References that must resolve inside the rendering: ConfigMaps, Secrets and claims the pods use,
 * Service and PodDisruptionBudget selectors that select some pod template.
 */
export function referenceProblems(objects: KubeObject[]): string[] {
  const problems: string[] = [];
  const named = (kind: string) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  const configMaps = named('ConfigMap');
  const secrets = named('Secret');
  const claims = named('PersistentVolumeClaim');
  const podLabels: Array<Record<string, string>> = [];
  for (const obj of objects) {
    const pod = podSpecOf(obj);
    if (!pod) continue;
    const where = `${obj.kind}/${obj.metadata.name}`;
    const template = (obj.spec as { template?: { metadata?: { labels?: Record<string, string> } } }).template;
    const labels = template?.metadata?.labels ?? {};
    podLabels.push(labels);
    const selector = (obj.spec as { selector?: { matchLabels?: Record<string, string> } }).selector?.matchLabels;
    if (selector && !selects(selector, labels)) problems.push(`${where}: its selector does not match its pod template`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef && !configMaps.has(from.configMapRef.name)) problems.push(`${where}: ConfigMap ${from.configMapRef.name} is missing`);
        if (from.secretRef && !secrets.has(from.secretRef.name)) problems.push(`${where}: Secret ${from.secretRef.name} is missing`);
      }
    }
    for (const v of pod.volumes ?? []) {
      if (v.persistentVolumeClaim && !claims.has(v.persistentVolumeClaim.claimName)) {
        problems.push(`${where}: PersistentVolumeClaim ${v.persistentVolumeClaim.claimName} is missing`);
      }
    }
  }
  for (const obj of objects) {
    let selector: Record<string, string> | undefined;
    if (obj.kind === 'Service') selector = (obj.spec as { selector?: Record<string, string> }).selector;
    if (obj.kind === 'PodDisruptionBudget') selector = (obj.spec as { selector?: { matchLabels?: Record<string, string> } }).selector?.matchLabels;
    if (selector && !podLabels.some((labels) => selects(selector, labels))) {
      problems.push(`${obj.kind}/${obj.metadata.name}: its selector selects no pod`);
    }
  }
  return problems;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
