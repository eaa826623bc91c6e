import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { NfError } from '../errors';
import type { CloudInitRun } from '../vmm/types';
import type { VmRecord } from './records';

/**
 * Guest customisation through cloud-init's NoCloud source: the host attaches a seed ISO labelled
 * "cidata" (meta-data, user-data, network-config) as a CD-ROM, made anew at every start from the VM's
 * record, so a change is seen at the next boot. The password is kept only as a SHA-512 crypt hash, and
 * neither it nor the user-data is shown by the API (either may hold secrets).
 */
export interface CloudInitInput {
  hostname?: string;
  sshKeys?: string[];
  /** Plain text; hashed here, never stored as given. */
  password?: string;
  /** A whole user-data document (#cloud-config or a script), instead of sshKeys and password. */
  userData?: string;
  /** A network-config document (version 2); without it the guest uses DHCP. */
  networkConfig?: string;
}

export type CloudInitRecord = Omit<CloudInitInput, 'password'> & { passwordHash?: string };

export interface CloudInitView {
  hostname?: string;
  sshKeys?: string[];
  passwordSet: boolean;
  userData: boolean;
  networkConfig: boolean;
}

/** What the API shows of it: no password hash, no user-data text. */
export function cloudInitView(c: CloudInitRecord): CloudInitView {
  const view: CloudInitView = {
    passwordSet: !!c.passwordHash,
    userData: c.userData !== undefined,
    networkConfig: c.networkConfig !== undefined,
  };
  if (c.hostname) view.hostname = c.hostname;
  if (c.sshKeys) view.sshKeys = c.sshKeys;
  return view;
}

/** Validates and hashes what a request gives; nothing is written on a refusal. */
export async function cloudInitRecord(input: CloudInitInput): Promise<CloudInitRecord> {
  if (input.userData !== undefined && (input.sshKeys || input.password !== undefined))
    throw new NfError(
      'validation_failed',
      'cloudInit: give either userData (a whole document) or sshKeys/password (NeuroFlow writes the document), not both',
    );
  if (input.userData !== undefined && !/^(#cloud-config|#!)/.test(input.userData))
    throw new NfError(
      'validation_failed',
      'cloudInit.userData must start with #cloud-config or #! (a script)',
    );
  const rec: CloudInitRecord = {};
  if (input.hostname) rec.hostname = input.hostname;
  if (input.sshKeys) rec.sshKeys = input.sshKeys;
  if (input.userData !== undefined) rec.userData = input.userData;
  if (input.networkConfig !== undefined) rec.networkConfig = input.networkConfig;
  if (input.password !== undefined) rec.passwordHash = await sha512Crypt(input.password);
  return rec;
}

/** The seed's three documents for the node (meta-data and user-data always). */
export function renderCloudInit(vm: VmRecord, c: CloudInitRecord): CloudInitRun {
  const q = (s: string) => JSON.stringify(s); // a JSON string is a YAML double-quoted scalar
  // a new instance id whenever the settings change: cloud-init applies keys and passwords once per instance
  const version = createHash('sha256')
    .update(JSON.stringify([vm.name, c]))
    .digest('hex')
    .slice(0, 12);
  const metaData = `instance-id: ${q(`${vm.id}-${version}`)}\nlocal-hostname: ${q(c.hostname ?? vm.name)}\n`;
  let userData = c.userData;
  if (userData === undefined) {
    const lines = ['#cloud-config', `hostname: ${q(c.hostname ?? vm.name)}`];
    if (c.sshKeys?.length) {
      lines.push('ssh_authorized_keys:');
      for (const k of c.sshKeys) lines.push(`  - ${q(k)}`);
    }
    if (c.passwordHash) {
      lines.push(
        'ssh_pwauth: true',
        'chpasswd:',
        '  expire: false',
        '  list: |',
        `    root:${c.passwordHash}`,
      );
    }
    userData = `${lines.join('\n')}\n`;
  }
  const run: CloudInitRun = { metaData, userData };
  if (c.networkConfig !== undefined) run.networkConfig = c.networkConfig;
  return run;
}

/** SHA-512 crypt ($6$) by openssl, the password on its stdin (never in an argv). */
function sha512Crypt(password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['passwd', '-6', '-stdin'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.once('error', (e) => reject(new NfError('unavailable', `cannot run openssl: ${e.message}`)));
    child.once('close', (code) => {
      const hash = out.trim();
      if (code === 0 && hash.startsWith('$6$')) resolve(hash);
      else reject(new NfError('internal', `openssl passwd failed: ${err.trim() || `exit ${code}`}`));
    });
    child.stdin.end(`${password}\n`);
  });
}
