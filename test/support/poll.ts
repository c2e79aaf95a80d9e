/**
 * Polls `check` until it returns something other than undefined (or false), and returns that;
 * throws once `timeoutMs` has passed, with `what` and, when given, `state()` (what was seen last) in
 * the message: a wait for something another task or process brings about that cannot hang. (Waits
 * that also watch a VM or a process end, as the e2e tests' do, keep loops of their own.)
 */
export async function pollUntil<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs: number; intervalMs?: number; state?: () => unknown },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const seen = options.state ? `; last seen: ${JSON.stringify(await options.state())}` : '';
      throw new Error(`${what}: not within ${options.timeoutMs} ms${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}
