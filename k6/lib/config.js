// Every knob of the k6 scripts, from the environment (`k6 run -e NAME=value` or the shell),
// over each script's own defaults (`configure({...})` at its top), over the ones below.
// Sizes are per run, all k6 processes together where a script says so (see k6/README.md).

const DEFAULTS = {
  /** REST base URL of the gateway (or its load balancer). */
  BASE_URL: 'http://127.0.0.1:8080',
  /** WebSocket URL; derived from BASE_URL when empty. */
  WS_URL: '',
  /** Password of every user the scripts create. */
  PASSWORD: 'k6-load-password',
  /** Prefix of the usernames; a fresh random suffix is added per run and process. */
  USER_PREFIX: 'k6',
  /** Sockets in all, over every k6 process of the run (--execution-segment splits them). */
  SOCKETS: 20,
  /** Sockets each VU holds (k6's event loop: one VU, many sockets). */
  SOCKETS_PER_VU: 10,
  /** Sockets each user holds (the cell's limits.sockets_per_user must allow it). */
  SOCKETS_PER_USER: 1,
  /** Members of each room (group channel); every user is in exactly one room. */
  ROOM_SIZE: 10,
  /** Milliseconds between two sends of one socket; 0 holds the socket idle. */
  SEND_EVERY_MS: 1000,
  /** Bytes of each message's content (at least its timestamp header). */
  MESSAGE_BYTES: 64,
  /** Seconds over which the sockets open (each process ramps its own share). */
  RAMP_SECONDS: 0,
  /** Seconds every socket stays open once all are open. */
  HOLD_SECONDS: 15,
  /** Seconds at the end with no new sends, for the last acks and deliveries. */
  DRAIN_SECONDS: 3,
  /** Seconds between two refreshes of each user's session (REST refresh, then auth.refresh on
   *  each of its sockets); under the cell's access_token_ttl (15 min by default). 0: never. */
  REFRESH_EVERY_SECONDS: 600,
  /** Seconds after the ramp at which every socket is dropped and resumed at once; 0: never. */
  SPIKE_AT_SECONDS: 0,
  /** Whose users setup() creates: `instance`, the sockets of this k6 process's VUs (each
   *  process runs its own setup(), as k6 run does); `test`, every socket of the run, the VUs
   *  picking theirs by their test-wide id (the k6-operator runs setup() once, on its first
   *  runner, and hands its data to every runner). */
  SEED: 'instance',
  /** Register requests in flight at once in setup(). */
  SETUP_PARALLEL: 16,
  /** The SLOs the thresholds hold (seed 003): p99 in milliseconds, and the error share. */
  SLO_P99_MS: 100,
  SLO_ERROR_RATE: 0.001,
  /** rest-mix.js: REST requests per second, and its duration in seconds. */
  REST_RATE: 20,
  REST_SECONDS: 30,
};

/** The settings in force; filled by configure(). */
export const config = {};

/** Sets `config` from the environment over `defaults` over DEFAULTS; call at a script's top. */
export function configure(defaults = {}) {
  for (const [name, fallback] of Object.entries({ ...DEFAULTS, ...defaults })) {
    const given = __ENV[name] === undefined || __ENV[name] === '' ? fallback : __ENV[name];
    if (typeof DEFAULTS[name] === 'number') {
      const value = Number(given);
      if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0, got ${given}`);
      config[name] = value;
    } else {
      config[name] = String(given);
    }
  }
  if (!['instance', 'test'].includes(config.SEED)) throw new Error(`SEED must be instance or test, got ${config.SEED}`);
  config.BASE_URL = config.BASE_URL.replace(/\/$/, '');
  config.WS_URL = config.WS_URL || config.BASE_URL.replace(/^http/, 'ws') + '/ws';
  return config;
}

configure();

/** How many VUs a run of `sockets` sockets needs. */
export const vusFor = (sockets) => Math.max(1, Math.ceil(sockets / config.SOCKETS_PER_VU));
