/**
 * The node side of the cluster: serves the `Node` gRPC service over a NodeApi (the local Node) so
 * that controllers on other hosts can drive it through a RemoteNode.
 */

import type { ServerDuplexStream, ServerWritableStream } from '@grpc/grpc-js';
import type { RestoreVolumeRequest, VmBackupRequest } from '../../backup/node-backup';
import { NfError } from '../../errors';
import type { ConsoleStream, NodeApi, VmStatus } from '../../node/types';
import * as pb from '../gen/neuroflow/v1/node';
import {
  cephApplyFromPb,
  cephStateToPb,
  diskFromPb,
  endpointFromPb,
  endpointToPb,
  isolationFromPb,
  limitsFromPb,
  nicFromPb,
  nodeInfoToPb,
  pointToPb,
  policyFromPb,
  progressToPb,
  rangeFromPb,
  specFromPb,
  stopOptionsFromPb,
  vmStatusToPb,
  volumeFormatFromPb,
} from './convert';
import { toGrpcError } from './errors';
import { checkPeer, type GrpcServerHandle, type ServeOptions, startGrpcServer, unaryHandler } from './server';
import { type PeerIdentity, peerIdentity } from './tls';

export interface NodeServiceOptions {
  /**
   * Who may call; by default only holders of a controller certificate. May throw an NfError with its
   * own reason (serve.ts adds the caller's address and its membership: ControllerMembers.check).
   */
  authorize?: (peer: PeerIdentity) => boolean;
  /**
   * The ids of every VM the node knows, for the first update of WatchStatus. Without it, the server
   * only knows the VMs it has seen a status of since it started (through onStatus or a call).
   */
  vmIds?: () => Iterable<string>;
}

export interface ServeNodeOptions extends ServeOptions, NodeServiceOptions {}

/** The `Node` service over a NodeApi, to serve with pb.NodeService (possibly beside other services). */
export interface NodeServiceHandlers {
  readonly implementation: pb.NodeServer;
  /** Ends the WatchStatus streams and stops listening to the node. */
  close(): void;
  /**
   * Checks the callers of the open streams (WatchStatus, Console) again, after what `authorize` knows
   * changed (a controller was removed): the streams of refused callers end with their refusal.
   * Returns how many were ended.
   */
  recheck(): number;
}

/** The Node service of this host, running. */
export interface NodeServerHandle {
  readonly port: number;
  /** See NodeServiceHandlers.recheck. */
  recheck(): number;
  /** Ends the WatchStatus streams and shuts the server down. */
  stop(): Promise<void>;
}

/** Only controllers drive nodes. */
export const controllersOnly = (p: PeerIdentity): boolean => p.role === 'controller';

/** Serves `node` as the gRPC `Node` service on opts.host:opts.port over mTLS (a server of its own). */
export async function serveNode(node: NodeApi, opts: ServeNodeOptions): Promise<NodeServerHandle> {
  const handlers = nodeServiceHandlers(node, opts);
  const handle: GrpcServerHandle = await startGrpcServer([[pb.NodeService, handlers.implementation]], opts);
  return {
    port: handle.port,
    recheck: () => handlers.recheck(),
    stop: async () => {
      handlers.close();
      await handle.stop();
    },
  };
}

/** The handlers of the `Node` service over `node`. */
export function nodeServiceHandlers(node: NodeApi, opts: NodeServiceOptions = {}): NodeServiceHandlers {
  const authorize = opts.authorize ?? controllersOnly;
  const seen = new Set<string>();
  /** Open streams and their callers, checked again by recheck(). */
  const watchers = new Map<ServerWritableStream<pb.WatchStatusRequest, pb.StatusUpdate>, PeerIdentity>();
  const consoles = new Map<
    ServerDuplexStream<pb.ConsoleData, pb.ConsoleData>,
    { peer: PeerIdentity; end(): void }
  >();
  const unary = <Req, Res>(fn: (req: Req) => Res | Promise<Res>) => unaryHandler(authorize, 'Node', fn);
  const status = (s: VmStatus): pb.VmStatus => {
    seen.add(s.id);
    return vmStatusToPb(s, node.hasProcess(s.id));
  };
  const empty = async (p: Promise<void>): Promise<pb.Empty> => {
    await p;
    return {};
  };
  /**
   * A server stream: the caller checked, progress messages at most one per `everyMs` (an `urgent` one
   * always goes), then the last message `fn` returns, if any, and the end; a failure ends it with the
   * error.
   */
  const streamed = <Req, Res>(
    call: ServerWritableStream<Req, Res>,
    everyMs: number,
    fn: (req: Req, send: (m: Res, urgent?: boolean) => void) => Promise<Res | undefined>,
  ): void => {
    try {
      checkPeer(peerIdentity(call), authorize, 'Node');
    } catch (err) {
      call.emit('error', toGrpcError(err));
      return;
    }
    let last = 0;
    const send = (m: Res, urgent = false) => {
      const now = Date.now();
      if ((!urgent && now - last < everyMs) || call.writableEnded) return;
      last = now;
      call.write(m);
    };
    fn(call.request, send).then(
      (final) => {
        if (call.writableEnded) return;
        if (final !== undefined) call.write(final);
        call.end();
      },
      (err) => {
        if (!call.writableEnded) call.emit('error', toGrpcError(err));
      },
    );
  };

  const unsubscribe = node.onStatus((s) => {
    seen.add(s.id);
    if (watchers.size === 0) return;
    // The node's current view: a status event may lack the agent state that vmStatus() merges in.
    const update: pb.StatusUpdate = { snapshot: false, vms: [status(node.vmStatus(s.id))] };
    for (const w of watchers.keys()) if (!w.cancelled && !w.writableEnded) w.write(update);
  });

  const impl: pb.NodeServer = {
    info: unary(async () => nodeInfoToPb(await node.info())),
    startVm: unary(async (r: pb.StartVmRequest) => status(await node.startVm(specFromPb(r.spec)))),
    stopVm: unary(async (r: pb.StopVmRequest) =>
      status(await node.stopVm(r.id, stopOptionsFromPb(r.options))),
    ),
    pauseVm: unary(async (r: pb.VmRequest) => status(await node.pauseVm(r.id))),
    resumeVm: unary(async (r: pb.VmRequest) => status(await node.resumeVm(r.id))),
    resetVm: unary(async (r: pb.VmRequest) => status(await node.resetVm(r.id))),
    snapshotVm: unary((r: pb.SnapshotRequest) => empty(node.snapshotVm(r.id, r.name, r.disks))),
    deleteVmSnapshot: unary((r: pb.SnapshotRequest) => empty(node.deleteVmSnapshot(r.id, r.name, r.disks))),
    revertVmSnapshot: unary((r: pb.SnapshotRequest) => empty(node.revertVmSnapshot(r.id, r.name, r.disks))),
    consoleLog: unary(async (r: pb.ConsoleLogRequest) => ({ text: await node.consoleLog(r.id, r.maxBytes) })),
    vmMetrics: unary(async (r: pb.VmMetricsRequest) => ({
      points: (await node.vmMetrics(r.id, rangeFromPb(r.range))).map(pointToPb),
    })),
    hostMetrics: unary(async (r: pb.HostMetricsRequest) => ({
      points: (await node.hostMetrics(rangeFromPb(r.range))).map(pointToPb),
    })),
    guestCommand: unary(async (r: pb.GuestCommandRequest): Promise<pb.GuestCommandResponse> => {
      const args = r.argsJson === undefined ? undefined : (JSON.parse(r.argsJson) as Record<string, unknown>);
      const opts: { timeoutMs?: number; noReply?: boolean } = {};
      if (r.timeoutMs !== undefined) opts.timeoutMs = r.timeoutMs;
      if (r.noReply !== undefined) opts.noReply = r.noReply;
      const result = await node.guestCommand<unknown>(r.id, r.command, args, opts);
      return result === undefined ? {} : { resultJson: JSON.stringify(result) };
    }),
    createVolume: unary((r: pb.CreateVolumeRequest) =>
      empty(
        node.createVolume(
          r.pool,
          r.volume,
          r.sizeBytes,
          r.backing && {
            file: r.backing.file,
            format: volumeFormatFromPb(r.backing.format),
            ...(r.backing.volume ? { volume: true } : {}),
            ...(r.backing.snapshot ? { snapshot: r.backing.snapshot } : {}),
          },
        ),
      ),
    ),
    deleteVolume: unary((r: pb.VolumeRequest) => empty(node.deleteVolume(r.pool, r.volume))),
    flattenVolume: unary((r: pb.VolumeRequest) => empty(node.flattenVolume(r.pool, r.volume))),
    resizeVolume: unary((r: pb.ResizeVolumeRequest) =>
      empty(
        node.resizeVolume(
          r.pool,
          r.volume,
          Number(r.sizeBytes),
          r.vmId && r.diskId ? { id: r.vmId, disk: r.diskId } : undefined,
        ),
      ),
    ),
    deleteImageFile: unary((r: pb.ImageFileRequest) => empty(node.deleteImageFile(r.pool, r.file))),
    copyImage: unary(async (r: pb.CopyImageRequest) => ({
      sizeBytes: await node.copyImage(
        { pool: r.srcPool, file: r.srcFile, format: r.srcFormat === 'raw' ? 'raw' : 'qcow2' },
        { pool: r.dstPool, volume: r.dstVolume },
      ),
    })),
    listVolumes: unary(async (r: pb.ListVolumesRequest) => ({
      volumes: (await node.listVolumes(r.pool)).map((v) => ({ ...v })),
    })),
    configurePools: unary((r: pb.ConfigurePoolsRequest) =>
      empty(node.configurePools(r.pools.map((p) => ({ ...p, type: p.type as 'rbd' })))),
    ),
    moveDisk: (call: ServerWritableStream<pb.MoveDiskRequest, pb.MoveDiskProgress>) =>
      streamed(call, 500, async (r, send) => {
        await node.moveDisk(
          {
            vmId: r.vmId,
            diskId: r.diskId,
            from: { pool: r.fromPool, volume: r.fromVolume },
            to: { pool: r.toPool, volume: r.toVolume },
          },
          (done, total) => send({ doneBytes: done, totalBytes: total }),
        );
        return undefined;
      }),
    backupVm: (call: ServerWritableStream<pb.BackupVmRequest, pb.BackupVmUpdate>) =>
      streamed(call, 500, async (r, send) => {
        const req = JSON.parse(r.requestJson) as VmBackupRequest;
        let phase = '';
        const manifest = await node.backupVm(
          { ...req, ...(r.key ? { key: Buffer.from(r.key) } : {}) },
          // a change of phase goes at once (`captured` lets the controller release the VM)
          (p) => {
            send(
              {
                phase: p.phase,
                doneBytes: p.doneBytes ?? 0,
                totalBytes: p.totalBytes ?? 0,
                ...(p.disk ? { disk: p.disk } : {}),
              },
              p.phase !== phase,
            );
            phase = p.phase;
          },
        );
        return { phase: 'done', doneBytes: 0, totalBytes: 0, manifestJson: JSON.stringify(manifest) };
      }),
    restoreVolume: (call: ServerWritableStream<pb.RestoreVolumeRequest, pb.RestoreVolumeUpdate>) =>
      streamed(call, 500, async (r, send) => {
        const req = JSON.parse(r.requestJson) as RestoreVolumeRequest;
        const { writtenBytes } = await node.restoreVolume(
          { ...req, ...(r.key ? { key: Buffer.from(r.key) } : {}) },
          (done, total) => send({ doneBytes: done, totalBytes: total }),
        );
        return { doneBytes: writtenBytes, totalBytes: writtenBytes, writtenBytes };
      }),
    cephApply: unary(async (r: pb.CephApplyRequest) =>
      cephStateToPb(await node.cephApply(cephApplyFromPb(r))),
    ),
    cephDaemons: unary(async () => cephStateToPb(await node.cephDaemons())),
    prepareIncoming: unary(async (r: pb.PrepareIncomingRequest) =>
      endpointToPb(
        await node.prepareIncoming({
          spec: specFromPb(r.spec),
          localDisks: r.localDisks.map((d) => ({ ...d, sizeBytes: Number(d.sizeBytes) })),
          policy: policyFromPb(r.policy),
        }),
      ),
    ),
    migrateOut: (call: ServerWritableStream<pb.MigrateOutRequest, pb.MigrateOutUpdate>) =>
      streamed(call, 250, async (r, send) => {
        // no controller to finish it: a migration must not complete on its own
        call.on('cancelled', () => void node.cancelMigration(r.vmId, 'the controller driving it went away'));
        const result = await node.migrateOut(
          {
            vmId: r.vmId,
            target: endpointFromPb(r.target),
            targetName: r.targetName,
            policy: policyFromPb(r.policy),
            localDisks: r.localDisks,
          },
          // every change of phase goes at once ("switching" starts the target)
          (p) => send({ kind: { $case: 'progress', value: progressToPb(p) } }, p.phase === 'switching'),
        );
        return { kind: { $case: 'result' as const, value: result } };
      }),
    cancelMigration: unary((r: pb.CancelMigrationRequest) => empty(node.cancelMigration(r.vmId, r.reason))),
    finishIncoming: unary(async (r: pb.VmRequest) => status(await node.finishIncoming(r.id))),
    abortIncoming: unary((r: pb.AbortIncomingRequest) => node.abortIncoming(r.vmId, r.volumes)),
    resumeMigrated: unary(async (r: pb.VmRequest) => status(await node.resumeMigrated(r.id))),
    hasProcess: unary((r: pb.VmRequest) => ({ hasProcess: node.hasProcess(r.id) })),
    probe: unary(() => node.probe()),
    setIsolation: unary((r: pb.SetIsolationRequest) =>
      empty(node.setIsolation(r.id, r.isolationResponse ? isolationFromPb(r.isolationResponse) : undefined)),
    ),
    plugDevice: unary((r: pb.PlugDeviceRequest) => {
      const d = r.device;
      if (!d) throw new NfError('validation_failed', 'the request names no device');
      return empty(
        node.plugDevice(
          r.id,
          d.$case === 'disk' ? { disk: diskFromPb(d.value) } : { nic: nicFromPb(d.value) },
        ),
      );
    }),
    unplugDevice: unary((r: pb.UnplugDeviceRequest) => {
      const d = r.device;
      if (!d) throw new NfError('validation_failed', 'the request names no device');
      return empty(node.unplugDevice(r.id, d.$case === 'disk' ? { disk: d.value } : { nic: d.value }));
    }),
    vmDevices: unary((r: pb.VmRequest) => node.vmDevices(r.id)),
    addVcpus: unary((r: pb.AddVcpusRequest) => empty(node.addVcpus(r.id, r.count))),
    addMemory: unary((r: pb.AddMemoryRequest) => empty(node.addMemory(r.id, r.memoryMib))),
    tuneDevice: unary((r: pb.TuneDeviceRequest) => {
      const d = r.device;
      if (!d) throw new NfError('validation_failed', 'the request names no device');
      return empty(
        node.tuneDevice(
          r.id,
          d.$case === 'disk'
            ? { disk: d.value.disk, limits: d.value.limits ? limitsFromPb(d.value.limits) : {} }
            : { nic: d.value.nic, linkUp: d.value.up },
        ),
      );
    }),
    changeMedia: unary((r: pb.ChangeMediaRequest) =>
      empty(node.changeMedia(r.id, r.iso && { pool: r.iso.pool, file: r.iso.file })),
    ),
    forgetVm: unary(async (r: pb.VmRequest) => {
      await node.forgetVm(r.id);
      seen.delete(r.id);
      return {};
    }),
    console: (call: ServerDuplexStream<pb.ConsoleData, pb.ConsoleData>) => {
      const peer = peerIdentity(call);
      try {
        checkPeer(peer, authorize, 'Node');
      } catch (err) {
        call.emit('error', toGrpcError(err));
        return;
      }

      let stream: ConsoleStream | undefined;
      let opening: Promise<void> | undefined;
      const early: Uint8Array[] = [];
      call.on('data', (m: pb.ConsoleData) => {
        if (stream) {
          if (m.data.length) stream.write(m.data);
          return;
        }
        if (m.data.length) early.push(m.data);
        if (opening) return;
        opening = node.openConsole(m.vmId).then(
          (s) => {
            stream = s;
            for (const d of early.splice(0)) s.write(d);
            s.onData((d) => {
              if (!call.writableEnded) call.write({ vmId: '', data: Buffer.from(d) });
            });
            s.onClose(() => {
              if (!call.writableEnded) call.end();
            });
            if (call.cancelled) s.close();
          },
          (err) => {
            if (!call.writableEnded) call.emit('error', toGrpcError(err));
          },
        );
      });
      const end = () => {
        consoles.delete(call);
        stream?.close();
      };
      consoles.set(call, { peer, end });
      call.on('end', end);
      call.on('cancelled', end);
      call.on('close', end);
    },
    watchStatus: (call) => {
      const peer = peerIdentity(call);
      try {
        checkPeer(peer, authorize, 'Node');
      } catch (err) {
        call.emit('error', toGrpcError(err));
        return;
      }
      // Snapshot and subscription in one tick: no change can fall between them.
      const ids = new Set([...(opts.vmIds?.() ?? []), ...seen]);
      call.write({ snapshot: true, vms: [...ids].map((id) => status(node.vmStatus(id))) });
      watchers.set(call, peer);
      const drop = () => watchers.delete(call);
      call.on('cancelled', drop);
      call.on('close', drop);
    },
  };

  return {
    implementation: impl,
    close: () => {
      unsubscribe();
      for (const w of watchers.keys()) w.end();
      watchers.clear();
    },
    recheck: () => {
      const refused = (peer: PeerIdentity): unknown => {
        try {
          checkPeer(peer, authorize, 'Node');
          return undefined;
        } catch (err) {
          return err;
        }
      };
      let ended = 0;
      for (const [call, peer] of watchers) {
        const err = refused(peer);
        if (!err) continue;
        watchers.delete(call);
        ended++;
        if (!call.writableEnded) call.emit('error', toGrpcError(err));
      }
      for (const [call, c] of consoles) {
        const err = refused(c.peer);
        if (!err) continue;
        ended++;
        if (!call.writableEnded) call.emit('error', toGrpcError(err)); // first: closing the VNC side ends the call
        c.end();
      }
      return ended;
    },
  };
}
