/**
 * Live migration between two hosts, as the VMM sees it: what the target listens on, what the source
 * sends with, and the figures it reports. The controller orchestrates (src/controller/migration.ts).
 */

/** Where the target's QEMU waits for the stream (and its NBD server for local disks). */
export interface IncomingEndpoint {
  /** The address the target bound (its management or migration network address). */
  address: string;
  port: number;
  /** The NBD server exporting the target's empty volumes of local disks, when there are any. */
  nbdPort?: number;
  /** The disks the NBD server exports, by disk id (the export name is the disk id). */
  nbdDisks?: string[];
}

/** How hard to try before giving up: never a silent growth of the downtime budget. */
export interface MigrationPolicy {
  /** The longest pause of the guest QEMU may choose for the switch-over (ms). */
  downtimeLimitMs: number;
  /** Throttle the guest's vCPUs after this many iterations that did not converge. */
  autoConvergeAfter: number;
  /** Switch to post-copy when pre-copy does not converge (only when asked). */
  postcopy: boolean;
  /** Abort after this long, with the reason. */
  timeLimitSec: number;
  /** Bandwidth cap of the stream, MiB/s (0: no cap). */
  maxBandwidthMiBps: number;
}

export const DEFAULT_POLICY: MigrationPolicy = {
  downtimeLimitMs: 50,
  autoConvergeAfter: 5,
  postcopy: false,
  timeLimitSec: 600,
  maxBandwidthMiBps: 0,
};

export interface OutgoingRequest {
  target: IncomingEndpoint;
  /** The name the target's certificate must carry (its host name). */
  targetName: string;
  policy: MigrationPolicy;
}

export interface MigrationProgress {
  phase: 'disks' | 'memory' | 'switching';
  ram?: {
    transferredBytes: number;
    remainingBytes: number;
    totalBytes: number;
    dirtyRateBytesPerSec: number;
    iteration: number;
    expectedDowntimeMs: number;
    mbps: number;
  };
  disks?: { doneBytes: number; totalBytes: number };
}

export interface MigrationResult {
  /** The pause of the guest as QEMU measured it (ms). */
  downtimeMs: number;
  totalMs: number;
  setupMs: number;
  transferredBytes: number;
  /** Post-copy was used (the guest ran on the target before all its memory was there). */
  postcopy: boolean;
  /** Local disks: how long the mirror took to get in step, and how much it copied. */
  diskCopyMs?: number;
  diskBytes?: number;
}

/**
 * Where a host's QEMU stands with a migration, what the controller needs after a failure: `incoming`
 * (the target waits for or receives the state), `received` (the target has all of it, paused, waiting
 * to be told to run), `outgoing` (the source sends), `migrated` (the source sent all of it and is paused).
 */
export type MigrationRole = 'incoming' | 'received' | 'outgoing' | 'migrated';
