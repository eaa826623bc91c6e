import { randomBytes } from 'node:crypto';
import type { Server, ServerWebSocket, WebSocketHandler } from 'bun';
import { keys } from '../controller/records';
import { NfError } from '../errors';
import type { ConsoleStream } from '../node/types';
import type { Store } from '../store/store';
import { createLogger } from '../util/log';
import { sessionHash } from './sessions';

const log = createLogger('console');
const TICKET_TTL_MS = 30_000;
const PATH = /^\/api\/v1\/vms\/([0-9a-f-]{36})\/vnc$/;

export interface Ticket {
  vmId: string;
  user: string;
  expiresAt: number;
}

/** Where tickets are kept: `take` hands a ticket out once, whichever controller asks. */
export interface TicketBackend {
  put(hash: string, t: Ticket): Promise<void>;
  take(hash: string): Promise<Ticket | undefined>;
}

/**
 * Tickets in etcd (`/neuroflow/v1/console-tickets/<hash>`), so the browser may open the websocket on any
 * controller; taking one is a transaction on its revision (single use across the cluster). Expired ones
 * are deleted when the next ticket is issued.
 */
export class StoredTickets implements TicketBackend {
  constructor(private readonly store: Store) {}

  async put(hash: string, t: Ticket): Promise<void> {
    const now = Date.now();
    const old = (await this.store.list<Ticket>(keys.consoleTickets)).filter((x) => x.value.expiresAt < now);
    await this.store.txn({
      put: [{ key: keys.consoleTicket(hash), value: t }],
      ...(old.length > 0 ? { delete: old.map((x) => x.key) } : {}),
    });
  }

  async take(hash: string): Promise<Ticket | undefined> {
    const cur = await this.store.get<Ticket>(keys.consoleTicket(hash));
    if (!cur) return undefined;
    try {
      await this.store.txn({ when: [{ key: cur.key, revision: cur.revision }], delete: [cur.key] });
    } catch {
      return undefined; // taken by another controller meanwhile
    }
    return cur.value;
  }
}

interface SocketData {
  vmId: string;
  user: string;
  vnc?: ConsoleStream;
  /** Bytes from the browser that arrived before the VNC stream was open. */
  pending: Buffer[];
  closed?: boolean;
}

/**
 * The VM console for noVNC: an authenticated websocket on the API that carries RFB to and from QEMU's
 * VNC server, which listens only on a unix socket in the VM's run dir on the VM's host (reached through
 * the node API: in process here, a gRPC stream for another host). A browser cannot put a bearer
 * token on a websocket, so the API hands out a one-time ticket (30 s, single use, bound to one VM), like
 * Proxmox's vncticket; the ticket is the only credential the upgrade accepts.
 */
export class ConsoleProxy {
  /** Where tickets are kept (set once the store is open; the API serves only after that). */
  private backend?: TicketBackend;

  constructor(
    private readonly open: (vmId: string) => Promise<ConsoleStream>,
    private readonly running: (vmId: string) => boolean | Promise<boolean>,
  ) {}

  /** Keeps tickets in `backend` from now on (every controller honours them). */
  useBackend(backend: TicketBackend): void {
    this.backend = backend;
  }

  async issue(vmId: string, user: string): Promise<{ ticket: string; expiresAt: string; path: string }> {
    if (!this.backend) throw new NfError('unavailable', 'NeuroFlow is starting; retry in a moment');
    const ticket = randomBytes(24).toString('base64url');
    const expiresAt = Date.now() + TICKET_TTL_MS;
    await this.backend.put(sessionHash(ticket), { vmId, user, expiresAt });
    return {
      ticket,
      expiresAt: new Date(expiresAt).toISOString(),
      path: `/api/v1/vms/${vmId}/vnc?ticket=${ticket}`,
    };
  }

  /**
   * Handles the upgrade request if it is one for us (the answer, or 'upgraded'); undefined means "not a
   * console request" (decided at once: other requests do not wait).
   */
  upgrade(req: Request, server: Server<SocketData>): Promise<Response | 'upgraded'> | undefined {
    const url = new URL(req.url);
    const m = PATH.exec(url.pathname);
    if (!m) return undefined;
    return this.upgradeConsole(req, server, m[1]!, url.searchParams.get('ticket') ?? '');
  }

  private async upgradeConsole(
    req: Request,
    server: Server<SocketData>,
    vmId: string,
    ticketId: string,
  ): Promise<Response | 'upgraded'> {
    // single use, whatever happens next
    const ticket = await this.backend?.take(sessionHash(ticketId)).catch(() => undefined);
    if (!ticket || ticket.expiresAt < Date.now() || ticket.vmId !== vmId) {
      return Response.json(
        new NfError(
          'unauthenticated',
          'console ticket missing, used, expired or for another VM; request a new one',
        ).toBody(),
        { status: 401 },
      );
    }
    if (!(await this.running(vmId))) {
      return Response.json(new NfError('invalid_state', 'the VM is not running: no console').toBody(), {
        status: 409,
      });
    }
    const ok = server.upgrade(req, { data: { vmId, user: ticket.user, pending: [] } });
    return ok
      ? 'upgraded'
      : Response.json(new NfError('validation_failed', 'expected a websocket upgrade').toBody(), {
          status: 400,
        });
  }

  readonly websocket: WebSocketHandler<SocketData> = {
    open: (ws) => {
      this.open(ws.data.vmId).then(
        (vnc) => {
          if (ws.data.closed) return vnc.close();
          ws.data.vnc = vnc;
          for (const b of ws.data.pending) vnc.write(b);
          ws.data.pending = [];
          log.info('console opened', { vm: ws.data.vmId, user: ws.data.user });
          vnc.onData((chunk) => ws.sendBinary(chunk));
          vnc.onClose((error) => {
            if (error) log.warn('VNC stream broke', { vm: ws.data.vmId, err: error });
            ws.close(
              error ? 1011 : 1000,
              error ? 'VNC server unreachable' : 'VNC server closed the connection',
            );
          });
        },
        (err: Error) => {
          log.warn('cannot open the VNC console', { vm: ws.data.vmId, err: err.message });
          ws.close(1011, 'VNC server unreachable');
        },
      );
    },
    message: (ws: ServerWebSocket<SocketData>, message) => {
      const buf = typeof message === 'string' ? Buffer.from(message, 'latin1') : Buffer.from(message);
      const vnc = ws.data.vnc;
      if (vnc) vnc.write(buf);
      else ws.data.pending.push(buf);
    },
    close: (ws) => {
      ws.data.closed = true;
      ws.data.vnc?.close();
    },
  };
}
