import { enrollmentPayload } from '../../support/context.ts';

/** One request of a probe: which listener it went to and what came back. */
export interface ProbeAnswer {
  via: string;
  status: number;
  retryAfter: string | null;
}

/** A listener to send to, by name (`api-1`, `nginx`, …). */
export interface Target {
  name: string;
  url: string;
}

const post = async (target: Target, path: string, forwardedFor: string, body: unknown): Promise<ProbeAnswer> => {
  const res = await fetch(`${target.url}${path}`, {
    method: 'POST',
    // The replicas trust the loopback proxy, so this is the client's address, as nginx would pass it on.
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return { via: target.name, status: res.status, retryAfter: res.headers.get('retry-after') };
};

/**
 * Failed sign-ins from one client address, sent to the targets in turn (`failures` of them), then
 * the right password through every target: with the throttle in the database, every one of those is 429.
 */
export async function probeLoginThrottle(targets: Target[], address: string, failures: number, password: string): Promise<{ failed: ProbeAnswer[]; after: ProbeAnswer[] }> {
  const failed: ProbeAnswer[] = [];
  for (let i = 0; i < failures; i++) failed.push(await post(targets[i % targets.length]!, '/api/v1/auth/login', address, { username: 'admin', password: `wrong-password-${i}` }));
  const after: ProbeAnswer[] = [];
  for (const target of targets) after.push(await post(target, '/api/v1/auth/login', address, { username: 'admin', password }));
  return { failed, after };
}

/** `count` enrollments from one client address (tags `<prefix>0…`), sent to the targets in turn. */
export async function probeEnrollRate(targets: Target[], address: string, count: number, prefix: string): Promise<ProbeAnswer[]> {
  const answers: ProbeAnswer[] = [];
  for (let i = 0; i < count; i++) answers.push(await post(targets[i % targets.length]!, '/api/v1/enroll', address, enrollmentPayload(`${prefix}${i}`)));
  return answers;
}

/** e.g. `401 api-1, 401 api-2, 429 nginx (retry after 180 s)` */
export function describeAnswers(answers: ProbeAnswer[]): string {
  return answers.map((a) => `${a.status} ${a.via}${a.retryAfter ? ` (retry after ${a.retryAfter} s)` : ''}`).join(', ');
}
