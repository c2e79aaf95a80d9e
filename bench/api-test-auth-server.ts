// The API role with the test authenticator (`x-test-role` header), for measuring listing while this
// version has no sign-in; it logs `metal: ready` like `metal serve` so the bench starts it the same way.
import { buildApiServer } from '../src/api/api-server.ts';
import { loadConfig } from '../src/config/config.ts';
import { createContext } from '../src/server/context.ts';
import { createLogger } from '../src/server/logger.ts';
import { headerAuthenticator } from '../src/testing/context.ts';

const config = loadConfig(process.env);
const logger = createLogger(config.logLevel);
const ctx = await createContext(config, logger, { authenticator: headerAuthenticator });
const app = await buildApiServer(ctx);
const address = await app.listen({ host: config.listen.host, port: config.listen.port });
logger.info({ addresses: { api: address } }, 'metal: ready');
const stop = () => void app.close().then(() => ctx.close()).then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
