// Spike: a reconnect storm. Every socket drops and resumes at the same moment
// (SPIKE_AT_SECONDS after the ramp), while the others keep sending: each resumes with
// `?resume=true` and `sync` from its last `seq`, and resends what had no ack. Gaps and
// repeats must stay 0; chat_connect shows what the storm costs.
//   k6 run -e BASE_URL=... -e SOCKETS=5000 k6/spike.js
import { configure } from './lib/config.js';
import { sloThresholds, summaryTrendStats } from './lib/chat.js';
import { holdSockets, seedForSockets, socketScenario } from './lib/run.js';

configure({ SOCKETS: 1000, RAMP_SECONDS: 20, HOLD_SECONDS: 40, SPIKE_AT_SECONDS: 15, SEND_EVERY_MS: 2000 });

export const options = {
  scenarios: { spike: socketScenario() },
  // The storm's own sends wait behind thousands of handshakes: their p99 is reported, and the
  // thresholds that matter here are errors, gaps and repeats.
  thresholds: { chat_errors: sloThresholds().chat_errors, chat_gaps: ['count==0'], chat_repeats: ['count==0'] },
  summaryTrendStats,
  setupTimeout: '30m',
};

export const setup = seedForSockets;
export default holdSockets;
