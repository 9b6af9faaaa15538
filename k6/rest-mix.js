// REST mix: what clients do besides the socket, at REST_RATE requests/s for REST_SECONDS
// (open loop: a slow cell shows as latency and dropped iterations, not as a politely slower
// client). setup() seeds users in rooms and fills each room with history; each iteration is
// one of: list my channels (35 %), a history page (backwards by seq, 30 %), search in a room
// (15 %), search everywhere (10 %), user search (5 %), a login (5 %; counts against the cell's
// per-IP auth budget).
//   k6 run -e BASE_URL=... -e REST_RATE=200 k6/rest-mix.js
import http from 'k6/http';
import { check } from 'k6';
import { config, configure } from './lib/config.js';
import { summaryTrendStats } from './lib/chat.js';
import { auth, seed } from './lib/rest.js';
import { WebSocket } from './lib/ws.js';

configure({ SOCKETS: 50, ROOM_SIZE: 10 });

/** Messages written into each room's history by setup(). */
const HISTORY = 60;
const WORDS = ['deploy', 'rollback', 'lunch', 'incident', 'review', 'standup', 'release', 'coffee'];

export const options = {
  scenarios: {
    rest: {
      executor: 'constant-arrival-rate',
      rate: config.REST_RATE,
      timeUnit: '1s',
      duration: `${config.REST_SECONDS}s`,
      preAllocatedVUs: Math.max(2, Math.ceil(config.REST_RATE / 5)),
      maxVUs: Math.max(10, config.REST_RATE * 2),
    },
  },
  thresholds: {
    http_req_failed: [`rate<${config.SLO_ERROR_RATE}`],
    'http_req_duration{kind:read}': [`p(99)<${config.SLO_P99_MS}`],
    checks: ['rate>0.999'],
    dropped_iterations: ['count==0'],
  },
  summaryTrendStats,
  setupTimeout: '10m',
};

/** Users in rooms, each room with HISTORY messages, sent over one socket per room. */
export function setup() {
  const data = seed(config.SOCKETS);
  for (const room of data.rooms) fillRoom(data.users.find((u) => u.room === room), room);
  return data;
}

/** Sends HISTORY messages into `room` as `owner` and waits for their acks. */
function fillRoom(owner, room) {
  const ws = new WebSocket(config.WS_URL, null, { headers: { Authorization: `Bearer ${owner.access}` } });
  let acked = 0;
  ws.onopen = () => {
    for (let i = 0; i < HISTORY; i++) {
      const content = `${WORDS[i % WORDS.length]} ${WORDS[(i * 3) % WORDS.length]} note ${i}`;
      ws.send(JSON.stringify({ type: 'message.send', id: `fill-${i}`, payload: { channel_id: room, content } }));
    }
  };
  ws.onmessage = (event) => {
    if (JSON.parse(event.data).type === 'message.ack' && ++acked === HISTORY) ws.close();
  };
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];

export default function (data) {
  const user = pick(data.users);
  const base = `${config.BASE_URL}/api/v1`;
  const read = (url, name) => http.get(url, { ...auth(user.access), tags: { name, kind: 'read' } });
  const roll = Math.random();
  let res;
  if (roll < 0.35) {
    res = read(`${base}/channels`, 'channels');
  } else if (roll < 0.65) {
    const before = 1 + Math.floor(Math.random() * HISTORY);
    res = read(`${base}/channels/${user.room}/messages?before_seq=${before}&limit=20`, 'history');
  } else if (roll < 0.8) {
    res = read(`${base}/channels/${user.room}/messages/search?q=${pick(WORDS)}`, 'search_channel');
  } else if (roll < 0.9) {
    res = read(`${base}/search?q=${pick(WORDS)}`, 'search');
  } else if (roll < 0.95) {
    res = read(`${base}/users/search?q=${config.USER_PREFIX}`, 'user_search');
  } else {
    res = http.post(`${base}/auth/login`, JSON.stringify({ username: user.username, password: config.PASSWORD }), {
      headers: { 'Content-Type': 'application/json' },
      tags: { name: 'login', kind: 'auth' },
    });
  }
  check(res, { 'status 200': (r) => r.status === 200 });
}
