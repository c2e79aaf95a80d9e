import type { FC } from 'hono/jsx';
import type { Rollout, RolloutMachine } from '../../core/rollout-machine.ts';
import { machineRef } from '../../core/machine-service.ts';
import { Alert, CsrfField, Layout, may, type PageContext, TableHead, When } from '../components.tsx';

const ACTIVE = new Set(['building', 'rolling', 'paused']);

/** How many machines of a list are in each state, e.g. `3 healthy · 2 updating`. */
function tally(machines: RolloutMachine[]): string {
  const by = new Map<string, number>();
  for (const m of machines) by.set(m.state, (by.get(m.state) ?? 0) + 1);
  return [...by.entries()].map(([state, n]) => `${n} ${state.replace('_', ' ')}`).join(' · ');
}

/** One wave as a row of cells, one per machine, coloured by its state. */
const WaveBar: FC<{ wave: number; machines: RolloutMachine[]; current: boolean }> = ({ wave, machines, current }) => (
  <div class="wave" data-wave={String(wave)} aria-current={current ? 'step' : undefined}>
    <span class="wave-label">{wave === 0 ? 'unchanged' : `wave ${wave}`}</span>
    <span class="wave-cells">
      {machines.map((m) => (
        <span class={`wave-cell state-${m.state}`} title={`${m.service_tag}: ${m.state}${m.message ? ` (${m.message})` : ''}`} data-state={m.state}></span>
      ))}
    </span>
    <span class="wave-tally muted">{tally(machines)}</span>
  </div>
);

/** Waves of a rollout, each with its machines' states. */
export const RolloutProgress: FC<{ rollout: Rollout }> = ({ rollout }) => {
  const waves = [...new Set(rollout.machines.map((m) => m.wave))].sort((a, b) => (a === 0 ? 1 : b === 0 ? -1 : a - b));
  return (
    <div class="waves">
      {waves.map((w) => (
        <WaveBar wave={w} machines={rollout.machines.filter((m) => m.wave === w)} current={w === rollout.wave && ACTIVE.has(rollout.state)} />
      ))}
    </div>
  );
};

/** Every rollout, newest first, with live progress while any is active. */
export const RolloutsLive: FC<{ rollouts: Rollout[]; page: PageContext }> = ({ rollouts, page }) => (
  <div id="rollouts-live" {...(rollouts.some((r) => ACTIVE.has(r.state)) ? { 'hx-get': '/rollouts?fragment=live', 'hx-trigger': 'every 3s', 'hx-swap': 'outerHTML' } : {})}>
    {rollouts.length === 0 ? (
      <section class="card">
        <p class="muted">
          No rollouts yet. Start one with <span class="mono">metal rollout start -l role=web --canary 1 --batch 5 --wait</span> or <span class="mono">POST /api/v1/rollouts</span>.
        </p>
      </section>
    ) : (
      rollouts.map((r) => (
        <section class="card" aria-labelledby={`rollout-${r.id}`}>
          <h2 id={`rollout-${r.id}`}>
            <a href={`/rollouts/${r.id}`}>Rollout #{r.id}</a> <span class={`badge rollout-${r.state}`} data-state={r.state}>{r.state}</span>
          </h2>
          <p>
            <span class="mono">{r.selector}</span> · wave {r.wave} of {r.waves} · {r.machines.length} machines · by {r.created_by}, <When iso={r.created_at} now={page.now} />
          </p>
          {r.message && <p class="muted">{r.message}</p>}
          <RolloutProgress rollout={r} />
        </section>
      ))
    )}
  </div>
);

export const RolloutsPage: FC<{ rollouts: Rollout[]; page: PageContext }> = ({ rollouts, page }) => (
  <Layout title="Rollouts" page={page} active="/rollouts">
    <h1>Rollouts</h1>
    <RolloutsLive rollouts={rollouts} page={page} />
  </Layout>
);

/** One rollout: its waves and, per machine, from and to build, state and times; live while active. */
export const RolloutLive: FC<{ rollout: Rollout; page: PageContext }> = ({ rollout: r, page }) => (
  <div id="rollout-live" {...(ACTIVE.has(r.state) ? { 'hx-get': `/rollouts/${r.id}?fragment=live`, 'hx-trigger': 'every 3s', 'hx-swap': 'outerHTML' } : {})}>
    <section class="card">
      <p>
        <span class={`badge rollout-${r.state}`} data-state={r.state}>{r.state}</span> · wave {r.wave} of {r.waves} · <span class="mono">{r.selector}</span>
      </p>
      <p class="muted">
        canary {r.canary}, batches of {r.batch_size}{r.max_unavailable > 0 ? `, at most ${r.max_unavailable} at once` : ''}, {r.max_failures} failures tolerated, {r.health_timeout_seconds} s to report, reboot {r.reboot}, build {r.build}
      </p>
      {r.message && <Alert kind={r.state === 'succeeded' ? 'notice' : 'error'}>{r.message}</Alert>}
      <RolloutProgress rollout={r} />
      {may(page, 'operator') && ACTIVE.has(r.state) && (
        <div class="actions">
          {r.state === 'paused' ? (
            <form method="post" action={`/rollouts/${r.id}/resume`} class="inline">
              <CsrfField page={page} />
              <button type="submit">Resume</button>
            </form>
          ) : (
            <form method="post" action={`/rollouts/${r.id}/pause`} class="inline">
              <CsrfField page={page} />
              <button type="submit">Pause</button>
            </form>
          )}
          <form method="post" action={`/rollouts/${r.id}/cancel`} class="inline">
            <CsrfField page={page} />
            <button type="submit" class="danger">
              Cancel
            </button>
          </form>
        </div>
      )}
    </section>
    <section class="card" aria-labelledby="rollout-machines">
      <h2 id="rollout-machines">Machines</h2>
      <table class="compact">
        <TableHead columns={['Machine', 'Wave', 'From', 'To', 'State', 'Updated', 'Note']} />
        <tbody>
          {r.machines.map((m) => (
            <tr>
              <td>
                <a href={`/machines/${encodeURIComponent(machineRef(m.service_tag))}`}>{m.service_tag}</a>
              </td>
              <td>{m.wave === 0 ? '–' : m.wave}</td>
              <td>{m.from_build_id ? <a href={`/builds/${m.from_build_id}`}>#{m.from_build_id}</a> : '–'}</td>
              <td>{m.to_build_id ? <a href={`/builds/${m.to_build_id}`}>#{m.to_build_id}</a> : '–'}</td>
              <td>
                <span class={`badge machine-state-${m.state}`} data-state={m.state}>{m.state.replace('_', ' ')}</span>
              </td>
              <td>
                <When iso={m.updated_at} now={page.now} />
              </td>
              <td class="muted">
                {m.message ?? ''}
                {m.health && (
                  <details class="health-result" data-health={m.health.ok ? 'passed' : 'failed'}>
                    <summary>
                      health check {m.health.ok ? 'passed' : 'failed'}
                      {m.health.exit_code === null ? '' : ` (exit ${m.health.exit_code})`}
                    </summary>
                    <pre>{m.health.output}</pre>
                  </details>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  </div>
);

export const RolloutPage: FC<{ rollout: Rollout; page: PageContext; error?: string | undefined }> = ({ rollout, page, error }) => (
  <Layout title={`Rollout #${rollout.id}`} page={page} active="/rollouts">
    <h1>Rollout #{rollout.id}</h1>
    {error && <Alert kind="error">{error}</Alert>}
    <RolloutLive rollout={rollout} page={page} />
  </Layout>
);
