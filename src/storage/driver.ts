import { NfError } from '../errors';

/**
 * The storage boundary: what a node asks of a pool, whatever holds the bytes (qcow2 files in a directory,
 * Ceph RBD images). Callers read `capabilities` instead of assuming; every driver passes one conformance
 * suite (src/storage/conformance.ts) against the real thing.
 */

/** What a pool can do. */
export interface StorageCapabilities {
  /** Every host of the cluster reaches the same volumes: a VM on it is not bound to one host. */
  shared: boolean;
  /** Volumes take space as data is written, not at creation. */
  thin: boolean;
  snapshots: boolean;
  /** A volume can be a copy-on-write clone of an image in the same pool. */
  linkedClones: boolean;
  /** A volume in use by a running VM can grow (QMP block_resize). */
  liveResize: boolean;
}

export interface PoolUsage {
  totalBytes: number;
  freeBytes: number;
  /** Sum of the volumes' virtual sizes (what guests see). */
  virtualBytes: number;
  /** What the volumes take on the storage (thin: less than virtual). */
  allocatedBytes: number;
  volumes: number;
}

export interface VolumeInfo {
  name: string;
  virtualBytes: number;
  allocatedBytes: number;
  /** The image it is a linked clone of, if any. */
  parent?: string;
  snapshots: string[];
}

/** A `-blockdev` node as QEMU's JSON takes it. */
export type BlockdevNode = Record<string, unknown> & { driver: string; 'node-name': string };

/** Where a volume's content comes from at creation. */
export interface CloneSource {
  /** An image of the same pool (a file name in a dir pool, an image name in an RBD pool). */
  image: string;
  format: 'qcow2' | 'raw';
  /** The source is a volume of the pool (a template's disk) rather than an image. */
  volume?: boolean;
  /**
   * With `volume`: a full, independent copy of the volume as it was at this snapshot, not a linked
   * clone. The source may be in use by a running VM meanwhile (a snapshot does not change).
   */
  snapshot?: string;
}

export interface StorageDriver {
  readonly name: string;
  readonly type: string;
  readonly capabilities: StorageCapabilities;

  /** Everything about the pool's space, volumes included (reads every volume: not for a hot path). */
  usage(): Promise<PoolUsage>;
  /** Size and free space only, cheaply: what a host reports on every heartbeat. */
  capacity(): Promise<{ totalBytes: number; freeBytes: number }>;
  /**
   * Creates a volume of sizeBytes (or the source's size), empty or as a linked clone of `clone`.
   * Idempotent: a volume that exists exactly as asked is accepted; anything else under the name is
   * refused with `already_exists` and left alone.
   */
  createVolume(volume: string, sizeBytes: number | undefined, clone?: CloneSource): Promise<void>;
  /** Deletes a volume and its snapshots; a volume that is not there is deleted. */
  deleteVolume(volume: string): Promise<void>;
  /** Grows a volume that no VM uses (a running VM grows through QMP block_resize). Shrinking is refused. */
  resizeVolume(volume: string, sizeBytes: number): Promise<void>;
  /**
   * Makes a linked clone independent of its parent (its parent's data copied in), in a volume no VM
   * uses. A volume that has no parent is left as it is.
   */
  flattenVolume(volume: string): Promise<void>;
  volumeInfo(volume: string): Promise<VolumeInfo | undefined>;
  listVolumes(): Promise<VolumeInfo[]>;

  snapshotCreate(volume: string, name: string): Promise<void>;
  /** Deleting a snapshot that is not there succeeds. */
  snapshotDelete(volume: string, name: string): Promise<void>;
  /** Puts the volume back to the snapshot; no VM may use it meanwhile. */
  snapshotRollback(volume: string, name: string): Promise<void>;
  hasSnapshot(volume: string, name: string): Promise<boolean>;

  /**
   * How QEMU opens the volume: -blockdev nodes from the protocol up; the last one is named `nodeName`
   * and is what the device uses.
   */
  blockdev(volume: string, nodeName: string, opts?: { readOnly?: boolean }): BlockdevNode[];
}

/**
 * How big a volume becomes on resize: refuses a missing volume and any shrink (data would be cut off);
 * returns undefined when the size is already right.
 */
export function growTo(
  pool: string,
  volume: string,
  have: number | undefined,
  want: number,
): number | undefined {
  if (have === undefined) throw new NfError('not_found', `volume ${volume} does not exist in pool ${pool}`);
  if (want < have)
    throw new NfError(
      'validation_failed',
      `volume ${volume} is ${have} bytes; shrinking it to ${want} would cut data off (only growing is allowed)`,
    );
  return want === have ? undefined : want;
}

/** The refusal of a create whose name is taken by a volume other than the one asked for. */
export function notAsAsked(pool: string, volume: string, why: string): NfError {
  return new NfError(
    'already_exists',
    `volume ${volume} already exists in pool ${pool} and is not the one asked for (${why}); it was left as it is`,
  );
}
