// The cell's REST API as the k6 scripts use it (docs/protocol.md §2–5), and the seeding of
// users and rooms that setup() does once per k6 process.
import http from 'k6/http';
import { check, fail } from 'k6';
import { config } from './config.js';

const JSON_HEADERS = { 'Content-Type': 'application/json' };

export const auth = (token) => ({ headers: { ...JSON_HEADERS, Authorization: `Bearer ${token}` } });

/** POST /auth/register for each name, SETUP_PARALLEL at a time; the sessions, in order. */
export function registerAll(names) {
  const sessions = [];
  for (let i = 0; i < names.length; i += config.SETUP_PARALLEL) {
    const batch = names.slice(i, i + config.SETUP_PARALLEL).map((username) => ({
      method: 'POST',
      url: `${config.BASE_URL}/api/v1/auth/register`,
      body: JSON.stringify({ email: `${username}@load.example`, username, password: config.PASSWORD }),
      params: { headers: JSON_HEADERS, tags: { name: 'register' } },
    }));
    for (const [j, res] of http.batch(batch).entries()) {
      if (res.status !== 201) {
        fail(`register ${names[i + j]}: ${res.status} ${res.body} (raise limits.auth_per_ip_burst on the cell)`);
      }
      const body = res.json();
      sessions.push({ id: body.user.id, username: body.user.username, access: body.access_token, refresh: body.refresh_token });
    }
  }
  return sessions;
}

/** POST /channels: a group of the creator and `members`; its id. */
export function createRoom(creator, members, name) {
  const res = http.post(
    `${config.BASE_URL}/api/v1/channels`,
    JSON.stringify({ type: 'group', name, member_ids: members.map((m) => m.id) }),
    { ...auth(creator.access), tags: { name: 'create_channel' } },
  );
  if (res.status !== 201) fail(`create channel ${name}: ${res.status} ${res.body}`);
  return res.json().id;
}

/**
 * Registers `count` fresh users and groups them into rooms of ROOM_SIZE (the last one may be
 * smaller). Returns { users: [{id, username, access, refresh, room}], rooms: [channel id] }.
 * Run from setup(): the per-IP register budget is the cell's, so this is done once per process,
 * not once per VU.
 */
export function seed(count) {
  const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const names = Array.from({ length: count }, (_, i) => `${config.USER_PREFIX}${run}-${i}`.slice(0, 32));
  const users = registerAll(names);
  const rooms = [];
  for (let start = 0; start < users.length; start += config.ROOM_SIZE) {
    const members = users.slice(start, start + config.ROOM_SIZE);
    const room = createRoom(members[0], members.slice(1), `${config.USER_PREFIX}-${run}-${rooms.length}`);
    members.forEach((m) => (m.room = room));
    rooms.push(room);
  }
  return { users, rooms };
}

/** POST /auth/refresh: the user's next session (the refresh token rotates). */
export function refresh(user) {
  const res = http.post(`${config.BASE_URL}/api/v1/auth/refresh`, JSON.stringify({ refresh_token: user.refresh }), {
    headers: JSON_HEADERS,
    tags: { name: 'refresh' },
  });
  if (!check(res, { 'refresh 200': (r) => r.status === 200 })) return false;
  const body = res.json();
  user.access = body.access_token;
  user.refresh = body.refresh_token;
  return true;
}
