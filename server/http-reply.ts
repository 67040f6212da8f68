/** Small helpers to answer HTTP requests and refused upgrades in the contract's shapes. */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, FlowtestError, type ErrorCode } from '../shared/errors.ts';

/** How long a connection closed on an unread request body keeps discarding what still arrives. */
export const LINGER_MS = 2000;

export function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders?: Record<string, string>): void {
  const text = JSON.stringify(body);
  const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) };
  res.writeHead(status, extraHeaders ? { ...headers, ...extraHeaders } : headers);
  res.end(text);
}

/**
 * Answers with `{error:{code,message}}`. When the request body was not read to its end,
 * the connection is closed after the answer instead of reading the rest of it.
 */
export function sendError(res: ServerResponse, error: FlowtestError, bodyUnread = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (bodyUnread) closeLingering(res);
  sendJson(res, error.status, error.toJSON(), bodyUnread ? { connection: 'close' } : undefined);
}

/**
 * Node closes the socket of a `connection: close` answer with destroySoon(): FIN, then
 * destroy. If the client is still sending the body we did not read, that destroy makes
 * the kernel answer it with a RST, and a client busy uploading loses the answer before
 * it reads it (nodejs/node#21026). So close the lingering way instead: FIN after the
 * answer, keep discarding what still arrives (Node dumps the unread request) until the
 * client closes its side or LINGER_MS pass, then destroy. The timer is owned by the
 * socket's close.
 */
function closeLingering(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  socket.destroySoon = () => {
    if (socket.writable) socket.end();
    // The client already sent all it had: nothing can be reset any more.
    if (socket.readableEnded) {
      if (socket.writableFinished) socket.destroy();
      else socket.once('finish', () => socket.destroy());
      return;
    }
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clearTimeout(timer));
    socket.once('end', () => socket.destroy());
  };
}

export function errorOf(code: ErrorCode, message: string): FlowtestError {
  return new FlowtestError(code, message);
}

/** Refuses a WebSocket upgrade with an HTTP answer and no socket. */
export function refuseUpgrade(socket: Duplex, status: number, code: ErrorCode | null, message: string, extraHeaders: Record<string, string> = {}): void {
  const body = code ? JSON.stringify({ error: { code, message } }) : '';
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(extraHeaders).map(([k, v]) => `${k}: ${v}`),
  ];
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
