import type { AuthService } from '../auth/auth-service.ts';
import type { BuildLifecycle } from '../core/build-lifecycle.ts';
import type { Logger } from '../core/logger.ts';
import type { MachineService } from '../core/machine-service.ts';
import type { BulkService } from '../core/bulk-service.ts';
import type { ProfileService } from '../core/profile-service.ts';
import type { RuleService } from '../core/rule-service.ts';
import type { Notifier } from '../core/notifier.ts';
import type { BuilderPresenceStore, BuildStore, EventStore, MachineStore, SettingStore } from '../core/ports.ts';
import type { StreamGuard } from '../http/stream-guard.ts';
import type { ImageLayout } from '../images/image-layout.ts';
import type { WebhookService } from '../webhooks/webhook-service.ts';
import type { MachinePowerService } from '../power/machine-power.ts';
import type { MachineImageService } from '../core/machine-images.ts';
import type { RolloutService } from '../core/rollout-service.ts';

/** Everything the dashboard uses, and nothing more. */
export interface DashboardDeps {
  machines: MachineService;
  builds: Pick<BuildLifecycle, 'get' | 'cancel'>;
  auth: AuthService;
  /** Reads the pages need beyond the services: summaries, recent activity. */
  reads: {
    machines: Pick<MachineStore, 'findById' | 'imageBuildId' | 'summaryRows'>;
    builds: Pick<BuildStore, 'findById' | 'recent' | 'countByStatus'>;
    /** Running builders (their heartbeats): a waiting build says when none is. */
    builderPresence: Pick<BuilderPresenceStore, 'list'>;
    events: Pick<EventStore, 'recent'>;
    /** The last backup's record (`core/backup-record.ts`), for the overview. */
    settings: Pick<SettingStore, 'get'>;
  };
  notifier: Notifier;
  /** Caps open log streams per user and ends them when their session dies. */
  streamGuard: StreamGuard;
  images: ImageLayout;
  /** Power state badges and the power buttons. */
  power: Pick<MachinePowerService, 'states' | 'act'>;
  /** METAL_BOOT_URL, shown in setup hints and image links. */
  bootUrl: string;
  logger: Logger;
  /** Profiles, rules and bulk actions (the /profiles and /rules pages are shown when given). */
  fleet?: {
    profiles: Pick<ProfileService, 'list' | 'get' | 'create' | 'update' | 'remove'>;
    rules: Pick<RuleService, 'list' | 'create' | 'remove' | 'preview'>;
    bulk: Pick<BulkService, 'run'>;
    machines: Pick<MachineService, 'list'>;
  };
  /** "Boot this build" on a machine's builds (shown when given). */
  machineImages?: Pick<MachineImageService, 'bootableBuilds' | 'rollback'>;
  /** The rollouts pages (shown when given). */
  rollouts?: Pick<RolloutService, 'list' | 'get' | 'pause' | 'resume' | 'cancel'>;
  /** Webhook endpoints (the admin page is shown when given). */
  webhooks?: Pick<WebhookService, 'list' | 'create' | 'update' | 'delete' | 'deliveries' | 'redeliver'>;
}
