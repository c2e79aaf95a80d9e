import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimulatedMachine } from './process-machine.ts';

/**
 * A Redfish service for tests, over HTTPS, implementing the DMTF resources the power client uses:
 * the service root, /Systems and one ComputerSystem (PowerState, Boot override with
 * `BootSourceOverrideTarget: Pxe`, `Actions/ComputerSystem.Reset`), and the SessionService (login by
 * POST to Sessions, X-Auth-Token, logout by DELETE), with HTTP basic as well. It switches a
 * SimulatedMachine, so a test can see the power change. Answers follow DMTF DSP0266 (status codes,
 * error bodies with `@Message.ExtendedInfo`); a Reset the machine's state does not allow is a 409, as
 * Dell iDRAC and HPE iLO answer.
 */
export interface RedfishTestServerOptions {
  keyPem: string;
  certPem: string;
  username: string;
  password: string;
  machine: SimulatedMachine;
  /** The ComputerSystem's Id. Default `1`. */
  systemId?: string;
}

/** One request the server received, for assertions. */
export interface RedfishRequestRecord {
  method: string;
  path: string;
  auth: 'none' | 'basic' | 'session';
}

export interface RedfishTestServer {
  port: number;
  systemPath: string;
  requests: RedfishRequestRecord[];
  /** The Boot override as a client set it, e.g. `{ enabled: 'Once', target: 'Pxe' }`. */
  bootOverride(): { enabled: string; target: string };
  /** Sessions open now. */
  openSessions(): number;
  close(): Promise<void>;
}

const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'PowerCycle', 'ForceOn'];
const BOOT_TARGETS = ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'];
const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'];
const MAX_BODY = 64 * 1024;

export async function startRedfishTestServer(options: RedfishTestServerOptions): Promise<RedfishTestServer> {
  const systemId = options.systemId ?? '1';
  const systemPath = `/redfish/v1/Systems/${systemId}`;
  const sessions = new Map<string, string>(); // token -> session id
  const boot = { enabled: 'Disabled', target: 'None' };
  let generation = 0; // bumps on every change, for the ETag
  const requests: RedfishRequestRecord[] = [];

  const system = () => ({
    '@odata.id': systemPath,
    '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
    Id: systemId,
    Name: 'Metal test system',
    SystemType: 'Physical',
    Manufacturer: 'Metal Lab',
    Model: 'Virtual Server',
    PowerState: options.machine.isOn() ? 'On' : 'Off',
    Boot: {
      BootSourceOverrideEnabled: boot.enabled,
      BootSourceOverrideTarget: boot.target,
      'BootSourceOverrideTarget@Redfish.AllowableValues': BOOT_TARGETS,
    },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${systemPath}/Actions/ComputerSystem.Reset`,
        'ResetType@Redfish.AllowableValues': RESET_TYPES,
      },
    },
  });
  const etag = () => `W/"${generation}"`;

  const powerOn = async () => {
    const pxe = boot.enabled !== 'Disabled' && boot.target === 'Pxe';
    if (boot.enabled === 'Once') {
      boot.enabled = 'Disabled';
      boot.target = 'None';
    }
    await options.machine.powerOn(pxe ? 'pxe' : 'default');
  };

  async function route(req: IncomingMessage, path: string, auth: RedfishRequestRecord['auth'], body: unknown): Promise<[number, unknown, Record<string, string>?]> {
    const m = req.method ?? 'GET';
    if (m === 'GET' && path === '/redfish') return [200, { v1: '/redfish/v1/' }];
    if (m === 'GET' && path === '/redfish/v1') {
      return [200, {
        '@odata.id': '/redfish/v1/', '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot', Id: 'RootService', Name: 'Root Service', RedfishVersion: '1.6.0',
        Systems: { '@odata.id': '/redfish/v1/Systems' }, SessionService: { '@odata.id': '/redfish/v1/SessionService' },
        Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
      }];
    }
    if (m === 'POST' && path === '/redfish/v1/SessionService/Sessions') {
      const b = body as { UserName?: unknown; Password?: unknown } | undefined;
      if (!b || typeof b.UserName !== 'string' || typeof b.Password !== 'string') return error(400, 'PropertyMissing', 'UserName and Password are required.');
      if (!credentialsMatch(b.UserName, b.Password)) return error(401, 'NoValidSession', 'Invalid username or password.');
      const token = randomBytes(16).toString('hex');
      const id = randomUUID();
      sessions.set(token, id);
      const location = `/redfish/v1/SessionService/Sessions/${id}`;
      return [201, { '@odata.id': location, '@odata.type': '#Session.v1_3_0.Session', Id: id, Name: 'User Session', UserName: b.UserName }, { 'x-auth-token': token, location }];
    }
    if (auth === 'none') return error(401, 'NoValidSession', 'There is no valid session established with the implementation.');
    if (m === 'GET' && path === '/redfish/v1/SessionService') {
      return [200, { '@odata.id': '/redfish/v1/SessionService', Id: 'SessionService', ServiceEnabled: true, SessionTimeout: 600, Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } }];
    }
    if (m === 'GET' && path === '/redfish/v1/SessionService/Sessions') {
      return [200, collection('/redfish/v1/SessionService/Sessions', '#SessionCollection.SessionCollection', [...sessions.values()].map((id) => `/redfish/v1/SessionService/Sessions/${id}`))];
    }
    const session = /^\/redfish\/v1\/SessionService\/Sessions\/([0-9a-f-]+)$/.exec(path);
    if (session && m === 'DELETE') {
      const token = [...sessions.entries()].find(([, id]) => id === session[1])?.[0];
      if (!token) return error(404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`);
      sessions.delete(token);
      return [204, undefined];
    }
    if (m === 'GET' && path === '/redfish/v1/Systems') return [200, collection('/redfish/v1/Systems', '#ComputerSystemCollection.ComputerSystemCollection', [systemPath])];
    if (m === 'GET' && path === systemPath) return [200, system(), { etag: etag() }];
    if (m === 'PATCH' && path === systemPath) {
      const match = req.headers['if-match'];
      if (match !== undefined && match !== etag()) return error(412, 'PreconditionFailed', 'The ETag supplied did not match the ETag of the resource.');
      const b = (body as { Boot?: Record<string, unknown> } | undefined)?.Boot;
      if (!b || typeof b !== 'object') return error(400, 'PropertyMissing', 'The property Boot is required.');
      for (const [key, allowed] of [['BootSourceOverrideTarget', BOOT_TARGETS], ['BootSourceOverrideEnabled', BOOT_ENABLED]] as const) {
        if (b[key] !== undefined && !allowed.includes(b[key] as string)) return error(400, 'PropertyValueNotInList', `The value ${JSON.stringify(b[key])} for the property ${key} is not in the list of acceptable values.`);
      }
      if (typeof b.BootSourceOverrideTarget === 'string') boot.target = b.BootSourceOverrideTarget;
      if (typeof b.BootSourceOverrideEnabled === 'string') boot.enabled = b.BootSourceOverrideEnabled;
      generation++;
      return [200, system(), { etag: etag() }];
    }
    if (m === 'POST' && path === `${systemPath}/Actions/ComputerSystem.Reset`) {
      const type = (body as { ResetType?: unknown } | undefined)?.ResetType;
      if (typeof type !== 'string' || !RESET_TYPES.includes(type)) return error(400, 'ActionParameterNotSupported', `The value ${JSON.stringify(type)} for ResetType is not supported.`);
      const on = options.machine.isOn();
      if ((type === 'On' || type === 'ForceOn') && on) return error(409, 'ResourceInUse', 'The system is already powered on.');
      if ((type === 'ForceOff' || type === 'GracefulShutdown' || type === 'ForceRestart' || type === 'PowerCycle') && !on) return error(409, 'ResourceInUse', 'The system is powered off.');
      if (type === 'ForceOff' || type === 'GracefulShutdown' || type === 'ForceRestart' || type === 'PowerCycle') await options.machine.powerOff();
      if (type !== 'ForceOff' && type !== 'GracefulShutdown') await powerOn();
      generation++;
      return [204, undefined];
    }
    if (['GET', 'PATCH', 'POST', 'DELETE'].includes(m)) return error(404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`);
    return error(405, 'OperationNotAllowed', `${m} is not allowed here.`);
  }

  function credentialsMatch(user: string, password: string): boolean {
    const a = Buffer.from(`${user}\0${password}`);
    const b = Buffer.from(`${options.username}\0${options.password}`);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  function authOf(req: IncomingMessage): RedfishRequestRecord['auth'] | 'bad' {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string') return sessions.has(token) ? 'session' : 'bad';
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [user, ...rest] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
      return credentialsMatch(user ?? '', rest.join(':')) ? 'basic' : 'bad';
    }
    return 'none';
  }

  const server: Server = createServer({ key: options.keyPem, cert: options.certPem }, (req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'https://bmc').pathname).replace(/\/+$/, '') || '/';
    const seen = authOf(req);
    requests.push({ method: req.method ?? '', path, auth: seen === 'bad' ? 'none' : seen });
    let status: number;
    let body: unknown;
    let headers: Record<string, string> | undefined;
    try {
      const raw = await readBody(req);
      let parsed: unknown;
      if (raw !== '') {
        try {
          parsed = JSON.parse(raw);
        } catch {
          [status, body] = error(400, 'MalformedJSON', 'The request body submitted was malformed JSON.');
          return send(res, status, body);
        }
      }
      [status, body, headers] = seen === 'bad' && !path.endsWith('/Sessions')
        ? error(401, 'NoValidSession', 'Invalid credentials or session.')
        : await route(req, path, seen === 'bad' ? 'none' : seen, parsed);
    } catch (err) {
      [status, body] = error(500, 'InternalError', `The request failed: ${(err as Error).message}`);
    }
    send(res, status, body, headers);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    systemPath,
    requests,
    bootOverride: () => ({ ...boot }),
    openSessions: () => sessions.size,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function collection(id: string, type: string, members: string[]) {
  return { '@odata.id': id, '@odata.type': type, Name: id.split('/').at(-1), Members: members.map((m) => ({ '@odata.id': m })), 'Members@odata.count': members.length };
}

function error(status: number, messageId: string, message: string): [number, unknown, Record<string, string>?] {
  return [status, { error: { code: `Base.1.8.${messageId}`, message, '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: `Base.1.8.${messageId}`, Message: message, Severity: 'Warning' }] } }, status === 401 ? { 'www-authenticate': 'Basic realm="Redfish"' } : undefined];
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'odata-version': '4.0', ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}), 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
