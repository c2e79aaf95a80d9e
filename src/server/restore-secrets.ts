import { SecretBox } from '../auth/secret-box.ts';
import { machineContext, setContext } from '../power/machine-power.ts';
import type { Database } from '../storage/database.ts';
import { SqlBmcCredentialSetStore, SqlPowerStore } from '../storage/power-store.ts';
import { SqlWebhookStore } from '../storage/webhook-store.ts';
import { WEBHOOK_SECRET_CONTEXT } from '../webhooks/webhook-service.ts';

/** What a restore with another secret key left unopenable, for the operator to set again. */
export interface UnopenedSecrets {
  /** Machines whose own BMC password does not open (`metal bmc set TAG --password-file …`). */
  machines: string[];
  /** Credential sets whose password does not open (`metal bmc sets set NAME --password-file …`). */
  credentialSets: string[];
  /** Webhooks whose signing secret does not open; those that were on are switched off. */
  webhooks: Array<{ id: number; url: string }>;
}

/** Why a webhook restored without its key is off, as `metal webhooks ls` and the dashboard show it. */
export const WEBHOOK_SECRET_LOST_REASON = 'restored from a backup whose secret key was lost: set a new secret and switch it on (metal webhooks set ID --secret … --enable)';

/**
 * After `metal restore --new-secret-key`: finds the sealed secrets `key` does not open and switches off
 * the webhooks among them (their deliveries could only fail). BMC passwords need nothing switched off:
 * power actions and the poller refuse a password that does not open before they reach the BMC.
 */
export async function settleUnopenedSecrets(database: Database, key: Buffer, now = new Date()): Promise<UnopenedSecrets> {
  const box = new SecretBox(key);
  const opens = (sealed: string, context: string) => {
    try {
      box.decrypt(sealed, context);
      return true;
    } catch {
      return false;
    }
  };
  const webhookStore = new SqlWebhookStore(database.db);
  const webhooks = (await webhookStore.listWithSecrets()).filter((w) => !opens(w.secret, WEBHOOK_SECRET_CONTEXT));
  for (const w of webhooks) {
    if (w.enabled) await webhookStore.update(w.id, { enabled: false, disabled_reason: WEBHOOK_SECRET_LOST_REASON }, now.toISOString());
  }
  const machines = (await new SqlPowerStore(database.db).listWithBmc()).filter((m) => {
    const sealed = m.bmc?.password_sealed;
    return sealed != null && !opens(sealed, machineContext(m.machine_id));
  });
  const sets = (await new SqlBmcCredentialSetStore(database.db).list()).filter((c) => !opens(c.password_sealed, setContext(c.name)));
  return {
    machines: machines.map((m) => m.service_tag),
    credentialSets: sets.map((c) => c.name),
    webhooks: webhooks.map((w) => ({ id: w.id, url: w.url })),
  };
}
