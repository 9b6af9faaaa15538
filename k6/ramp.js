// Ramp: SOCKETS sockets (all processes together) opened over RAMP_SECONDS and held; a
// fraction of them sending (SEND_EVERY_MS per socket; 0 keeps them all idle). Past ~19k
// sockets on one machine, run it over several k6 processes and source addresses:
// scripts/k6-ramp.sh. Defaults: 1,000 sockets, 60 s ramp, 60 s hold, one send per 10 s each.
//   k6 run -e BASE_URL=... -e SOCKETS=100000 -e SOCKETS_PER_VU=500 -e SOCKETS_PER_USER=50 \
//     --execution-segment 0:1/4 --execution-segment-sequence 0,1/4,2/4,3/4,1 k6/ramp.js
import { configure } from './lib/config.js';
import { sloThresholds, summaryTrendStats } from './lib/chat.js';
import { holdSockets, seedForSockets, socketScenario } from './lib/run.js';

configure({ SOCKETS: 1000, RAMP_SECONDS: 60, HOLD_SECONDS: 60, SEND_EVERY_MS: 10000 });

export const options = {
  scenarios: { ramp: socketScenario() },
  thresholds: sloThresholds(),
  summaryTrendStats,
  setupTimeout: '30m',
};

export const setup = seedForSockets;
export default holdSockets;
