// The shape every WebSocket script shares: setup() seeds this process's users and rooms; each
// VU then holds SOCKETS_PER_VU sockets, opened over RAMP_SECONDS (spread over the process's
// sockets, not VU by VU), kept HOLD_SECONDS, optionally all dropped and resumed at once
// SPIKE_AT_SECONDS after the ramp, and closed after DRAIN_SECONDS without new sends.
import exec from 'k6/execution';
import { ChatSocket } from './chat.js';
import { refresh, seed } from './rest.js';
import { config, vusFor } from './config.js';

const runMs = () => (config.RAMP_SECONDS + config.HOLD_SECONDS + config.DRAIN_SECONDS) * 1000;
/** Whether the run outlives one refresh period: then each VU refreshes its users' sessions. */
const refreshes = () => config.REFRESH_EVERY_SECONDS > 0 && runMs() > config.REFRESH_EVERY_SECONDS * 1000;

/** One scenario of SOCKETS sockets (in all processes together), each VU one iteration. */
export function socketScenario() {
  if (refreshes() && config.SOCKETS_PER_VU % config.SOCKETS_PER_USER !== 0) {
    // Two VUs refreshing one user's token would spend it twice and revoke the session.
    throw new Error('runs past REFRESH_EVERY_SECONDS need SOCKETS_PER_VU to be a multiple of SOCKETS_PER_USER');
  }
  return {
    executor: 'per-vu-iterations',
    vus: vusFor(config.SOCKETS),
    iterations: 1,
    maxDuration: `${config.RAMP_SECONDS + config.HOLD_SECONDS + config.DRAIN_SECONDS + 120}s`,
  };
}

/** setup(): the users this process's VUs (SEED=instance) or the whole run (SEED=test) need, in rooms. */
export function seedForSockets() {
  const vus = config.SEED === 'test' ? vusFor(config.SOCKETS) : exec.instance.vusInitialized;
  const sockets = vus * config.SOCKETS_PER_VU;
  return seed(Math.max(2, Math.ceil(sockets / config.SOCKETS_PER_USER)));
}

/** The default function: this VU's sockets, from open to close. */
export function holdSockets(data) {
  const vu = config.SEED === 'test' ? exec.vu.idInTest : exec.vu.idInInstance;
  // The ramp is spread over this process's sockets.
  const total = exec.instance.vusInitialized * config.SOCKETS_PER_VU;
  const sockets = [];
  const mine = new Set();
  for (let j = 0; j < config.SOCKETS_PER_VU; j++) {
    const k = (vu - 1) * config.SOCKETS_PER_VU + j;
    const user = data.users[Math.floor(k / config.SOCKETS_PER_USER) % data.users.length];
    mine.add(user);
    const local = (exec.vu.idInInstance - 1) * config.SOCKETS_PER_VU + j;
    const delay = total > 1 ? Math.floor((local / total) * config.RAMP_SECONDS * 1000) : 0;
    setTimeout(() => sockets.push(new ChatSocket(user, `${vu}.${j}`)), delay);
  }
  const rampMs = config.RAMP_SECONDS * 1000;
  if (config.SPIKE_AT_SECONDS > 0) {
    setTimeout(() => sockets.forEach((s) => s.reconnect()), rampMs + config.SPIKE_AT_SECONDS * 1000);
  }
  let refresher = null;
  if (refreshes()) {
    refresher = setInterval(() => {
      for (const user of mine) {
        if (refresh(user)) sockets.filter((s) => s.user === user).forEach((s) => s.refreshToken());
      }
    }, config.REFRESH_EVERY_SECONDS * 1000);
  }
  setTimeout(() => {
    if (refresher) clearInterval(refresher);
    sockets.forEach((s) => s.close(config.DRAIN_SECONDS * 1000));
  }, rampMs + config.HOLD_SECONDS * 1000);
}
