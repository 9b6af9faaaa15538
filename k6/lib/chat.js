// One chat socket as a load client (docs/protocol.md §6): it opens with the user's access
// token, sends into its room every SEND_EVERY_MS, measures send→ack and send→deliver (the
// send time rides in the content), counts gaps and repeats by `seq`, and on a reconnect
// resumes exactly where it stopped (`?resume=true`, then `sync` with its last `seq`).
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from './ws.js';
import { config } from './config.js';

export const sendToAck = new Trend('chat_send_ack', true);
export const sendToDeliver = new Trend('chat_send_deliver', true);
export const connectTime = new Trend('chat_connect', true);
export const acks = new Counter('chat_acks');
export const deliveries = new Counter('chat_deliveries');
/** `seq`s a socket never got although it got a later one of the same channel. */
export const gaps = new Counter('chat_gaps');
/** A `seq` not above the last one a socket got (the server promises never). */
export const repeats = new Counter('chat_repeats');
/** Per send and per socket: 1 for an error frame, a failed open, an unexpected close or a send
 *  never answered; 0 for an ack. */
export const errors = new Rate('chat_errors');
export const socketsOpen = new Counter('chat_sockets_opened');
/** `auth.refreshed` answers: a socket took its user's newer access token. */
export const tokensRefreshed = new Counter('chat_tokens_refreshed');

/** The summary's trend columns: p(99) is what the SLOs name. */
export const summaryTrendStats = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

/** The thresholds of the SLOs (seed 003), shared by every WebSocket script. */
export const sloThresholds = () => ({
  chat_send_ack: [`p(99)<${config.SLO_P99_MS}`],
  chat_send_deliver: [`p(99)<${config.SLO_P99_MS}`],
  chat_errors: [`rate<${config.SLO_ERROR_RATE}`],
  chat_gaps: ['count==0'],
  chat_repeats: ['count==0'],
});

let counter = 0;
const padding = (n) => 'x'.repeat(Math.max(0, n));

/** A socket of `user` (from seed()) in its room: `close()` ends it, `reconnect()` drops and resumes it. */
export class ChatSocket {
  constructor(user, tag) {
    this.user = user;
    this.tag = tag;
    this.last = {}; // channel id -> last seq this client got
    this.pending = new Map(); // client id -> { at: send time (ms), frame: the frame sent }
    this.sending = null;
    this.closing = false;
    this.open(false);
  }

  open(resume) {
    const started = Date.now();
    const url = resume ? `${config.WS_URL}?resume=true` : config.WS_URL;
    const ws = new WebSocket(url, null, { headers: { Authorization: `Bearer ${this.user.access}` } });
    this.ws = ws;
    ws.onopen = () => {
      connectTime.add(Date.now() - started);
      socketsOpen.add(1);
      // Every counter a threshold names gets a sample, so 'count==0' is judged, not skipped.
      gaps.add(0);
      repeats.add(0);
      // On a resume, the first frame is the sync: everything missed comes before live traffic.
      if (resume) {
        ws.send(JSON.stringify({ type: 'sync', id: `s-${this.tag}`, payload: { channels: this.last } }));
        // Sends the old socket had no answer for: resent with the same id (stored at most once).
        for (const { frame } of this.pending.values()) ws.send(frame);
      }
      if (config.SEND_EVERY_MS > 0 && !this.sending) this.startSending();
    };
    ws.onmessage = (event) => this.frame(event.data);
    ws.onerror = (event) => {
      // A socket this client is closing (at the end, or replaced by reconnect()) may end
      // without the server's close frame: not the cell's error.
      if (!this.closing && ws === this.ws) {
        errors.add(1);
        console.warn(`socket ${this.tag}: ${event.error}`);
      }
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return; // a socket replaced by reconnect()
      if (!this.closing) {
        errors.add(1);
        console.warn(`socket ${this.tag}: closed by the server (${event.code} ${event.reason})`);
      }
      this.stopSending();
    };
  }

  startSending() {
    // Spread the first sends over one interval, so sockets do not send in lockstep.
    const first = Math.floor(Math.random() * config.SEND_EVERY_MS);
    this.sending = setTimeout(() => {
      this.sending = setInterval(() => this.send(), config.SEND_EVERY_MS);
      this.send();
    }, first);
  }

  stopSending() {
    if (this.sending) {
      clearTimeout(this.sending);
      clearInterval(this.sending);
    }
    this.sending = null;
  }

  send() {
    if (this.ws.readyState !== 1) return;
    const id = `k${this.tag}-${++counter}`;
    const now = Date.now();
    const header = `t=${now} `;
    const frame = JSON.stringify({
      type: 'message.send',
      id,
      payload: { channel_id: this.user.room, content: header + padding(config.MESSAGE_BYTES - header.length) },
    });
    this.pending.set(id, { at: now, frame });
    this.ws.send(frame);
  }

  frame(data) {
    const frame = JSON.parse(data);
    switch (frame.type) {
      case 'message.ack': {
        const sent = this.pending.get(frame.id);
        if (sent !== undefined) {
          sendToAck.add(Date.now() - sent.at);
          this.pending.delete(frame.id);
        }
        acks.add(1);
        errors.add(0);
        break;
      }
      case 'message.new':
        this.delivered(frame.payload);
        break;
      case 'auth.refreshed':
        tokensRefreshed.add(1);
        break;
      case 'error':
        errors.add(1);
        console.warn(`socket ${this.tag}: error frame ${JSON.stringify(frame.payload)}`);
        if (frame.id) this.pending.delete(frame.id);
        break;
      default:
        break;
    }
  }

  delivered(message) {
    const last = this.last[message.channel_id];
    if (last !== undefined && message.seq <= last) {
      repeats.add(1);
      return;
    }
    if (last !== undefined && message.seq > last + 1) gaps.add(message.seq - last - 1);
    this.last[message.channel_id] = message.seq;
    deliveries.add(1);
    const sent = /^t=(\d+) /.exec(message.content);
    if (sent) sendToDeliver.add(Date.now() - Number(sent[1]));
  }

  /** Stops sending; the socket closes after `drainMs`, and sends still unanswered count as errors. */
  close(drainMs = 0) {
    this.stopSending();
    setTimeout(() => {
      this.closing = true;
      for (let i = 0; i < this.pending.size; i++) errors.add(1);
      if (this.pending.size > 0) console.warn(`socket ${this.tag}: ${this.pending.size} sends never answered`);
      this.pending.clear();
      this.ws.close();
    }, drainMs);
  }

  /** Hands the socket the user's newer access token before the old one expires (`auth.refresh`). */
  refreshToken() {
    if (this.ws.readyState !== 1) return;
    this.ws.send(JSON.stringify({ type: 'auth.refresh', id: `r-${this.tag}`, payload: { access_token: this.user.access } }));
  }

  /** Drops the connection and resumes it at once (a reconnect storm when every socket does). */
  reconnect() {
    const old = this.ws;
    this.open(true);
    old.close();
  }
}
