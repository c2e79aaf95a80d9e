import { enrollmentPayload } from '../../support/context.ts';

/** Milliseconds a simulated machine waits before its one retry (iPXE and the agent retry too). */
const RETRY_DELAY_MS = 300;
/** Longest one request may take before it counts as unanswered. */
const REQUEST_TIMEOUT_MS = 15_000;

/** What the simulated fleet saw. */
export interface FleetFigures {
  machines: number;
  /** Tags whose enrollment was answered 200 or 201. */
  acknowledged: Set<string>;
  scriptRequests: number;
  imageRequests: number;
  imageBytes: number;
  enrollRequests: number;
  /** Requests that needed their one retry. */
  retried: number;
  /** Requests not answered even after the retry, with why. */
  unanswered: string[];
  /** Script request latencies (ms), including a retry when one was needed. */
  scriptLatencies: number[];
  elapsedMs: number;
}

type Outcome = { ok: true; status: number; body: Buffer; attempts: number } | { ok: false; why: string };

/** One request with the simulated client's policy: a network error or a 5xx is retried once. */
async function requestWithRetry(url: string, init: RequestInit = {}): Promise<Outcome> {
  let why = '';
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status < 500) return { ok: true, status: res.status, body, attempts: attempt };
      why = `${res.status} ${body.toString('utf8', 0, 200)}`;
    } catch (err) {
      why = err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err);
    }
    if (attempt === 1) await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
  }
  return { ok: false, why };
}

/** The address simulated machine `i` enrolls from (each machine its own, as on a real network). */
function addressFor(i: number): string {
  return `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

function macFor(i: number): string {
  const hex = (0x100000 + i).toString(16).padStart(6, '0');
  return `52:54:01:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** The tag of simulated machine `i`, e.g. `FLEET00042`. */
export function fleetTag(i: number): string {
  return `FLEET${String(i).padStart(5, '0')}`;
}

export interface FleetOptions {
  bootUrl: string;
  machines: number;
  concurrency: number;
  /** Size of the registration initrd, to check each download whole. */
  initrdBytes: number;
  /** Called once when this many machines have finished (the moment to kill replicas). */
  milestone?: { after: number; run: () => void };
}

/**
 * Simulates machines PXE-booting: each asks for its script (registration, since it is unknown),
 * downloads the registration initrd the script names, enrolls, and asks for its script again (now a
 * hold). At most `concurrency` machines at once, all over loopback through the load balancer.
 */
export async function runFleet(o: FleetOptions): Promise<FleetFigures> {
  const figures: FleetFigures = {
    machines: o.machines,
    acknowledged: new Set(),
    scriptRequests: 0,
    imageRequests: 0,
    imageBytes: 0,
    enrollRequests: 0,
    retried: 0,
    unanswered: [],
    scriptLatencies: [],
    elapsedMs: 0,
  };
  const started = Date.now();
  let next = 0;
  let done = 0;

  const script = async (tag: string, i: number, expect: RegExp): Promise<string | undefined> => {
    figures.scriptRequests++;
    const t0 = performance.now();
    const r = await requestWithRetry(`${o.bootUrl}/nixos/machines/${tag}.ipxe?mac=${macFor(i)}`);
    figures.scriptLatencies.push(performance.now() - t0);
    if (!r.ok) return void figures.unanswered.push(`script ${tag}: ${r.why}`);
    if (r.attempts > 1) figures.retried++;
    const text = r.body.toString('utf8');
    if (r.status !== 200 || !text.startsWith('#!ipxe') || !expect.test(text)) {
      return void figures.unanswered.push(`script ${tag}: ${r.status} ${text.slice(0, 200)}`);
    }
    return text;
  };

  const machine = async (i: number) => {
    const tag = fleetTag(i);
    const registration = await script(tag, i, /initrd --name initrd /);
    if (!registration) return;
    const initrdUrl = /initrd --name initrd (\S+)/.exec(registration)?.[1];
    if (!initrdUrl) return void figures.unanswered.push(`script ${tag}: no initrd URL`);
    figures.imageRequests++;
    const image = await requestWithRetry(initrdUrl);
    if (!image.ok) return void figures.unanswered.push(`initrd ${tag}: ${image.why}`);
    if (image.attempts > 1) figures.retried++;
    if (image.status !== 200 || image.body.length !== o.initrdBytes) {
      return void figures.unanswered.push(`initrd ${tag}: ${image.status}, ${image.body.length} bytes`);
    }
    figures.imageBytes += image.body.length;

    figures.enrollRequests++;
    const enrolled = await requestWithRetry(`${o.bootUrl}/api/v1/enroll`, {
      method: 'POST',
      // nginx passes the header on and the replicas trust it (METAL_TRUST_PROXY), as behind a site's proxy.
      headers: { 'content-type': 'application/json', 'x-forwarded-for': addressFor(i) },
      body: JSON.stringify(enrollmentPayload(tag, { mac_address: macFor(i) })),
    });
    if (!enrolled.ok) return void figures.unanswered.push(`enroll ${tag}: ${enrolled.why}`);
    if (enrolled.attempts > 1) figures.retried++;
    if (enrolled.status !== 201 && enrolled.status !== 200) {
      return void figures.unanswered.push(`enroll ${tag}: ${enrolled.status} ${enrolled.body.toString('utf8', 0, 200)}`);
    }
    figures.acknowledged.add(tag);
    await script(tag, i, /asking the boot server again/);
  };

  const worker = async () => {
    while (next < o.machines) {
      const i = next++;
      await machine(i);
      done++;
      if (o.milestone && done === o.milestone.after) o.milestone.run();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  figures.elapsedMs = Date.now() - started;
  return figures;
}

/** The p-th percentile (0-100) of some numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
