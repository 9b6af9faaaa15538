// Soak: a steady load held for a long time (default 1,000 sockets, 2 h, one send per 5 s
// each): leaks, slow growth and token expiry show here. Sessions are refreshed every
// REFRESH_EVERY_SECONDS (10 min; REST refresh + auth.refresh on each socket), so SOCKETS_PER_VU
// must be a multiple of SOCKETS_PER_USER; a socket whose token expires unrefreshed is closed
// by the cell (4001) and counts as an error.
//   k6 run -e BASE_URL=... -e HOLD_SECONDS=7200 k6/soak.js
import { configure } from './lib/config.js';
import { sloThresholds, summaryTrendStats } from './lib/chat.js';
import { holdSockets, seedForSockets, socketScenario } from './lib/run.js';

configure({ SOCKETS: 1000, RAMP_SECONDS: 60, HOLD_SECONDS: 7200, SEND_EVERY_MS: 5000 });

export const options = {
  scenarios: { soak: socketScenario() },
  thresholds: sloThresholds(),
  summaryTrendStats,
  setupTimeout: '30m',
};

export const setup = seedForSockets;
export default holdSockets;
