import type { AuthService } from '../auth/auth-service.ts';
import type { BuildLifecycle } from '../core/build-lifecycle.ts';
import type { Logger } from '../core/logger.ts';
import type { MachineService } from '../core/machine-service.ts';
import type { Notifier } from '../core/notifier.ts';
import type { BuildStore, EventStore, MachineStore } from '../core/ports.ts';
import type { ImageLayout } from '../images/image-layout.ts';
import type { MachinePowerService } from '../power/machine-power.ts';

/** Everything the dashboard uses, and nothing more. */
export interface DashboardDeps {
  machines: MachineService;
  builds: Pick<BuildLifecycle, 'get' | 'cancel'>;
  auth: AuthService;
  /** Reads the pages need beyond the services: summaries, recent activity. */
  reads: {
    machines: Pick<MachineStore, 'findById' | 'imageBuildId' | 'summaryRows'>;
    builds: Pick<BuildStore, 'findById' | 'recent'>;
    events: Pick<EventStore, 'recent'>;
  };
  notifier: Notifier;
  images: ImageLayout;
  /** Power state badges and the power buttons. */
  power: Pick<MachinePowerService, 'states' | 'act'>;
  /** METAL_BOOT_URL, shown in setup hints and image links. */
  bootUrl: string;
  logger: Logger;
}
