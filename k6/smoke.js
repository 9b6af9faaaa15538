// Smoke: a few sockets in two rooms, sending for 15 s; every SLO threshold must hold. Runs in
// the test suite against a local cell (cell/tests/k6_smoke.rs): a failed threshold fails it.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 k6/smoke.js
import { configure } from './lib/config.js';
import { sloThresholds, summaryTrendStats } from './lib/chat.js';
import { holdSockets, seedForSockets, socketScenario } from './lib/run.js';

configure({ SOCKETS: 20, ROOM_SIZE: 10, SEND_EVERY_MS: 500, HOLD_SECONDS: 15 });

export const options = {
  scenarios: { smoke: socketScenario() },
  thresholds: { ...sloThresholds(), chat_acks: ['count>0'], chat_deliveries: ['count>0'] },
  summaryTrendStats,
  setupTimeout: '120s',
};

export const setup = seedForSockets;
export default holdSockets;
