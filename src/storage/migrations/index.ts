import type { Migration } from './context.ts';
import * as m0001 from './0001-initial.ts';
import * as m0002 from './0002-auth.ts';
import * as m0003 from './0003-machine-search-text.ts';
import * as m0004 from './0004-machine-identity.ts';
import * as m0007 from './0007-webhooks.ts';
import * as m0008 from './0008-boot-change-feed.ts';
import * as m0009 from './0009-bmc.ts';
import * as m0010 from './0010-dhcp-leases.ts';
import * as m0011 from './0011-machine-labels.ts';
import * as m0012 from './0012-config-files-nixpkgs.ts';
import * as m0013 from './0013-fleet.ts';
import * as m0014 from './0014-rollouts.ts';
import * as m0015 from './0015-rate-limits.ts';
import * as m0016 from './0016-health-checks.ts';
import * as m0017 from './0017-settings.ts';
import * as m0018 from './0018-machine-search-index.ts';
import * as m0019 from './0019-boot-feed-columns.ts';
import * as m0020 from './0020-build-boot-check.ts';
import * as m0021 from './0021-skip-boot-check.ts';
import * as m0022 from './0022-builder-presence.ts';

/**
 * Every migration, in order. Names are numbered and never change once released; add new ones at
 * the end. The same set runs on SQLite and PostgreSQL.
 */
export const MIGRATIONS: ReadonlyArray<readonly [string, Migration]> = [
  ['0001-initial', m0001],
  ['0002-auth', m0002],
  ['0003-machine-search-text', m0003],
  ['0004-machine-identity', m0004],
  ['0007-webhooks', m0007],
  ['0008-boot-change-feed', m0008],
  ['0009-bmc', m0009],
  ['0010-dhcp-leases', m0010],
  ['0011-machine-labels', m0011],
  ['0012-config-files-nixpkgs', m0012],
  ['0013-fleet', m0013],
  ['0014-rollouts', m0014],
  ['0015-rate-limits', m0015],
  ['0016-health-checks', m0016],
  ['0017-settings', m0017],
  ['0018-machine-search-index', m0018],
  ['0019-boot-feed-columns', m0019],
  ['0020-build-boot-check', m0020],
  ['0021-skip-boot-check', m0021],
  ['0022-builder-presence', m0022],
];
