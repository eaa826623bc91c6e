/**
 * The `Control` service: nodes report to the controllers over one long-lived Heartbeat stream each.
 * The server side (controlHandlers) answers reports with Acks, Redirects to the leader, the node's
 * Assignment and the cluster's current Controllers; the client side (HeartbeatClient) keeps the
 * stream to the leader alive.
 */
import { type ClientDuplexStream, type ServerDuplexStream, status as Status } from '@grpc/grpc-js';
import { NfError } from '../../errors';
import { createLogger } from '../../util/log';
import { parseHostPort } from '../../util/net';
import * as pb from '../gen/neuroflow/v1/node';
import { toGrpcError } from './errors';
import { checkPeer } from './server';
import {
  clientChannelOptions,
  clientCredentials,
  describePeer,
  type PeerIdentity,
  peerIdentity,
  type TlsPems,
} from './tls';

const log = createLogger('control');

/**
 * Handles one report of a node. May return the ids of the VMs the cluster assigns to that node; the
 * stream sends an Assignment whenever that list differs from the last one it sent.
 */
export type ReportHandler = (
  peer: PeerIdentity,
  report: pb.NodeReport,
) => string[] | undefined | Promise<string[] | undefined>;

/** Any holder of a cluster certificate may report; the report must be about the caller's own host. */
const anyMember = (p: PeerIdentity): boolean => p.role === 'controller' || p.role === 'worker';

export interface ControlOptions {
  /** Who may report; by default any holder of a cluster certificate (onReport checks membership). */
  authorize?: (peer: PeerIdentity) => boolean;
  /**
   * The controllers that are members now, sent to a node after its first accepted report and then
   * whenever they change (a node's Node service accepts calls only from them). A failure to read them
   * only skips the sending for that report.
   */
  controllers?: () => pb.Controllers | Promise<pb.Controllers>;
  /** HA: the self-fence window sent with every acknowledgement (0: off). */
  selfFenceMs?: () => number;
}

/**
 * The `Control` service implementation of a controller, to pass with pb.ControlService to
 * startGrpcServer. `leaderElsewhere` returns the leader's Control address when this controller is
 * not the leader (the node is then redirected there), undefined when it is.
 */
export function controlHandlers(
  onReport: ReportHandler,
  leaderElsewhere: () => { address: string; name: string } | undefined,
  opts: ControlOptions = {},
): pb.ControlServer {
  const authorize = opts.authorize ?? anyMember;
  return {
    heartbeat: (call: ServerDuplexStream<pb.NodeReport, pb.ControlMessage>) => {
      const peer = peerIdentity(call);
      const fail = (err: unknown) => {
        if (!call.writableEnded) call.emit('error', toGrpcError(err));
      };
      try {
        checkPeer(peer, authorize, 'Control');
      } catch (err) {
        fail(err);
        return;
      }
      let last: string[] | undefined;
      let lastControllers: string | undefined;
      let queue = Promise.resolve();
      call.on('data', (report: pb.NodeReport) => {
        queue = queue
          .then(async () => {
            if (call.writableEnded || call.cancelled) return;
            if (report.node !== peer.name) {
              throw new NfError('forbidden', `${describePeer(peer)} may not report as node "${report.node}"`);
            }
            const leader = leaderElsewhere();
            if (leader) {
              call.write({
                kind: { $case: 'redirect', value: { leader: leader.address, leaderName: leader.name } },
              });
              call.end();
              return;
            }
            const assignment = await onReport(peer, report);
            if (call.writableEnded || call.cancelled) return;
            call.write({
              kind: { $case: 'ack', value: { seq: report.seq, selfFenceMs: opts.selfFenceMs?.() ?? 0 } },
            });
            if (assignment && assignment.join('\n') !== last?.join('\n')) {
              last = [...assignment];
              call.write({ kind: { $case: 'assignment', value: { vmIds: last } } });
            }
            if (opts.controllers) {
              const list = await Promise.resolve()
                .then(opts.controllers)
                .catch((err: unknown) => {
                  log.debug('cannot read the controllers for a heartbeat reply', { err });
                  return undefined;
                });
              if (!list || call.writableEnded || call.cancelled) return;
              const key = JSON.stringify(list.controllers);
              if (key !== lastControllers) {
                lastControllers = key;
                call.write({ kind: { $case: 'controllers', value: list } });
              }
            }
          })
          .catch(fail);
      });
      call.on('end', () => {
        if (!call.writableEnded) call.end();
      });
    },
  };
}

export interface HeartbeatOptions {
  /** host:port of the controllers' Control service; the client tries them in turn. */
  controllers: string[];
  /** This node's certificate (CN = its name), key and the cluster CA. */
  tls: TlsPems;
  /** The report to send; seq is filled in. */
  report: () => Omit<pb.NodeReport, 'seq'> | Promise<Omit<pb.NodeReport, 'seq'>>;
  /**
   * Time between reports (1 s): an acknowledged report is the host's proof of contact for its HA
   * self-fence, so the gap before a link flap adds to the silence the flap causes.
   */
  intervalMs?: number;
  /**
   * First and longest wait before trying the next controller (250 ms, 1 s): after a link flap the host
   * must be back in contact well within the self-fence window (detection time minus a second).
   */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /**
   * A report not acknowledged within this long (3 intervals) means a stalled controller or a dead link:
   * the stream is dropped and the next controller tried (a new leader redirects), before the host's
   * self-fence. Checked every quarter interval.
   */
  ackTimeoutMs?: number;
  /** The name a controller's certificate must carry; by default the host part of its address. */
  serverName?: (address: string) => string;
}

/**
 * The node's end of the Heartbeat: keeps a stream to a controller (following Redirects to the leader,
 * moving on to the next controller on failure), sends a report every intervalMs and on sendNow(), and
 * hands received Assignments to onAssignment listeners.
 */
export class HeartbeatClient {
  private readonly listeners = new Set<(vmIds: string[]) => void>();
  private readonly ackListeners = new Set<(sentAt: number, selfFenceMs: number) => void>();
  /** Send time (monotonic) of each report not yet acknowledged, by seq. */
  private readonly sentAt = new Map<number, number>();
  private readonly controllerListeners = new Set<
    (list: pb.Controllers, meta: { firstOfStream: boolean }) => void
  >();
  private readonly intervalMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private backoffMs: number;
  private client?: pb.ControlClient;
  private stream?: ClientDuplexStream<pb.NodeReport, pb.ControlMessage>;
  private target?: string;
  private next = 0;
  private redirectTo?: string;
  /** Host names of redirect targets, learnt from the redirects. */
  private readonly redirectNames = new Map<string, string>();
  private redirects = 0;
  private seq = 0;
  private sending = false;
  private again = false;
  private timer?: ReturnType<typeof setInterval>;
  private ackTimer?: ReturnType<typeof setInterval>;
  private retry?: ReturnType<typeof setTimeout>;
  private stopped = true;
  private acked = false;
  /** Lists of controllers received on the current stream. */
  private listsOnStream = 0;

  constructor(private readonly opts: HeartbeatOptions) {
    if (opts.controllers.length === 0)
      throw new NfError('validation_failed', 'no controller address to report to');
    this.intervalMs = opts.intervalMs ?? 1000;
    this.reconnectMinMs = opts.reconnectMinMs ?? 250;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 1000;
    this.backoffMs = this.reconnectMinMs;
  }

  /** The controller the stream is open to, once it has acknowledged a report. */
  get controller(): string | undefined {
    return this.acked ? this.target : undefined;
  }

  /**
   * Called on each acknowledgement with the send time (performance.now()) of the report it acknowledges
   * (the leader renewed the host's lease after that) and the self-fence window the leader asks for.
   */
  onAck(listener: (sentAt: number, selfFenceMs: number) => void): () => void {
    this.ackListeners.add(listener);
    return () => this.ackListeners.delete(listener);
  }

  /** Called with the VM ids the cluster assigns to this node, each time they change. */
  onAssignment(listener: (vmIds: string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Called with the cluster's controllers as the leader sends them (after the first report of each
   * stream, then on change); `firstOfStream` marks the first of a stream.
   */
  onControllers(listener: (list: pb.Controllers, meta: { firstOfStream: boolean }) => void): () => void {
    this.controllerListeners.add(listener);
    return () => this.controllerListeners.delete(listener);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.sendNow(), this.intervalMs);
    this.ackTimer = setInterval(() => this.checkAcks(), Math.max(50, this.intervalMs / 4));
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.ackTimer);
    clearTimeout(this.retry);
    this.disconnect();
  }

  /** Sends a report now (e.g. after a VM changed state) instead of at the next tick. */
  sendNow(): void {
    if (!this.stream || this.stopped) return;
    if (this.sending) {
      this.again = true;
      return;
    }
    this.sending = true;
    void (async () => {
      try {
        do {
          this.again = false;
          const report = await this.opts.report();
          if (!this.stream) break;
          const seq = ++this.seq;
          this.sentAt.set(seq, performance.now());
          this.stream.write({ ...report, seq });
        } while (this.again && this.stream);
      } catch (err) {
        log.warn('building the node report failed', { err });
      } finally {
        this.sending = false;
      }
    })();
  }

  /** Drops a stream whose controller stopped acknowledging (stalled, or cut off from etcd). */
  private checkAcks(): void {
    const timeout = this.opts.ackTimeoutMs ?? this.intervalMs * 3;
    const oldest = Math.min(...this.sentAt.values());
    if (!this.stream || !Number.isFinite(oldest) || performance.now() - oldest < timeout) return;
    log.warn('the controller stopped acknowledging reports; trying the next one', { address: this.target });
    this.disconnect();
    this.retry = setTimeout(() => this.connect(), 0);
  }

  private connect(): void {
    if (this.stopped) return;
    const address = this.redirectTo ?? this.opts.controllers[this.next++ % this.opts.controllers.length]!;
    this.redirectTo = undefined;
    const name =
      this.redirectNames.get(address) ?? this.opts.serverName?.(address) ?? parseHostPort(address, 0).host;
    const client = new pb.ControlClient(
      address,
      clientCredentials(this.opts.tls, name),
      clientChannelOptions(name),
    );
    const stream = client.heartbeat();
    this.client = client;
    this.stream = stream;
    this.target = address;
    this.acked = false;
    this.listsOnStream = 0;
    stream.on('data', (m: pb.ControlMessage) => this.onMessage(m));
    stream.on('error', () => {}); // 'status' follows
    stream.on('status', (s: { code: number; details: string }) => {
      if (this.stream !== stream) return;
      // Refusals (not a member, wrong certificate) deserve a word; a controller going away does not.
      const quiet = s.code === Status.OK || s.code === Status.UNAVAILABLE || s.code === Status.CANCELLED;
      log[quiet ? 'debug' : 'warn']('heartbeat stream ended', { address, code: s.code, details: s.details });
      this.disconnect();
      if (this.stopped) return;
      // A redirect is followed at once, unless controllers keep bouncing the node around.
      const wait = this.redirectTo && this.redirects <= 3 ? 0 : this.backoffMs;
      if (!this.redirectTo || this.redirects > 3)
        this.backoffMs = Math.min(this.backoffMs * 2, this.reconnectMaxMs);
      this.retry = setTimeout(() => this.connect(), wait);
    });
    this.sendNow();
  }

  private onMessage(m: pb.ControlMessage): void {
    const k = m.kind;
    if (k?.$case === 'ack') {
      this.acked = true;
      this.redirects = 0;
      this.backoffMs = this.reconnectMinMs;
      const sentAt = this.sentAt.get(k.value.seq);
      for (const seq of this.sentAt.keys()) if (seq <= k.value.seq) this.sentAt.delete(seq);
      if (sentAt !== undefined)
        for (const l of this.ackListeners) {
          try {
            l(sentAt, k.value.selfFenceMs);
          } catch (err) {
            log.warn('ack listener failed', { err });
          }
        }
    } else if (k?.$case === 'redirect') {
      this.redirectTo = k.value.leader;
      if (k.value.leaderName) this.redirectNames.set(k.value.leader, k.value.leaderName);
      this.redirects++;
    } else if (k?.$case === 'assignment') {
      for (const l of this.listeners) l(k.value.vmIds);
    } else if (k?.$case === 'controllers') {
      const firstOfStream = this.listsOnStream++ === 0;
      for (const l of this.controllerListeners) {
        try {
          l(k.value, { firstOfStream });
        } catch (err) {
          log.warn('controllers listener failed', { err });
        }
      }
    }
  }

  private disconnect(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.acked = false;
    this.sentAt.clear();
    stream?.cancel();
    this.client?.close();
    this.client = undefined;
  }
}
