import { describe, expect, it } from 'vitest';
import type { Vm } from './api';
import {
  cloudInitLine,
  cloudInitLocked,
  createStartupBody,
  DEFAULT_STARTUP,
  onBootLine,
  parseSshKeys,
  passwordNeeded,
  startupEditBody,
  startupForm,
  startupProblem,
} from './startup';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJp2o0ZyFz0fY7rXc6cXo6Yq1bGd8bq3vX1U5vYk0C1a ui@test';
const KEY2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 other@host';

/** A VM as GET /vms/{id} shows it, with autostart and cloud-init (a password set). */
const VM = {
  id: 'v1',
  name: 'web1',
  state: 'stopped',
  node: 'h1',
  vcpus: 1,
  memoryMiB: 256,
  disks: [],
  networks: [],
  snapshots: [],
  boot: { disk: 0 },
  onBoot: { enabled: true, order: 1, delaySec: 30 },
  cloudInit: { hostname: 'web-01', sshKeys: [KEY], passwordSet: true, userData: false, networkConfig: false },
} as unknown as Vm;

const BARE = { ...VM, onBoot: undefined, cloudInit: undefined } as Vm;

describe('startup', () => {
  it('reads the keys one a line, trimmed, without empty lines', () => {
    expect(parseSshKeys('')).toEqual([]);
    expect(parseSshKeys(`\n  ${KEY}  \r\n\n${KEY2}\n`)).toEqual([KEY, KEY2]);
  });

  it('checks the order and the delay only when autostart is ticked', () => {
    expect(startupProblem(DEFAULT_STARTUP)).toBe('');
    expect(startupProblem({ ...DEFAULT_STARTUP, order: 'x' })).toBe('');
    const on = { ...DEFAULT_STARTUP, onBoot: true };
    expect(startupProblem({ ...on, order: '', delaySec: '' })).toBe('');
    expect(startupProblem({ ...on, order: '1000', delaySec: '600' })).toBe('');
    expect(startupProblem({ ...on, order: '1001' })).toMatch(/^Order/);
    expect(startupProblem({ ...on, order: '1.5' })).toMatch(/^Order/);
    expect(startupProblem({ ...on, delaySec: '-1' })).toMatch(/^Delay/);
    expect(startupProblem({ ...on, delaySec: '601' })).toMatch(/^Delay/);
  });

  it('creates: onBoot and cloudInit only when ticked, empty fields left out', () => {
    expect(createStartupBody(DEFAULT_STARTUP)).toEqual({});
    // the fields of an unticked section are not sent
    expect(createStartupBody({ ...DEFAULT_STARTUP, hostname: 'x', order: '3' })).toEqual({});
    expect(createStartupBody({ ...DEFAULT_STARTUP, onBoot: true, order: '2', delaySec: '5' })).toEqual({
      onBoot: { enabled: true, order: 2, delaySec: 5 },
    });
    expect(createStartupBody({ ...DEFAULT_STARTUP, onBoot: true, order: '', delaySec: '' })).toEqual({
      onBoot: { enabled: true, order: 0, delaySec: 0 },
    });
    expect(createStartupBody({ ...DEFAULT_STARTUP, cloudInit: true })).toEqual({ cloudInit: {} });
    expect(
      createStartupBody({
        ...DEFAULT_STARTUP,
        cloudInit: true,
        hostname: ' ui-ci ',
        sshKeys: `${KEY}\n\n`,
        password: 's3cret pass',
      }),
    ).toEqual({ cloudInit: { hostname: 'ui-ci', sshKeys: [KEY], password: 's3cret pass' } });
  });

  it('fills the edit dialog from the VM, the password empty and kept', () => {
    expect(startupForm(VM)).toEqual({
      onBoot: true,
      order: '1',
      delaySec: '30',
      cloudInit: true,
      hostname: 'web-01',
      sshKeys: KEY,
      password: '',
      keepPassword: true,
    });
    expect(startupForm(BARE)).toEqual({ ...DEFAULT_STARTUP });
  });

  it('sends nothing when nothing changed, so the password hash stays', () => {
    expect(startupEditBody(VM, startupForm(VM))).toEqual({});
    expect(startupEditBody(BARE, startupForm(BARE))).toEqual({});
    expect(passwordNeeded(VM, startupForm(VM))).toBe(false);
  });

  it('turns autostart off with {enabled: false}, on or changed with the whole of it', () => {
    const f = startupForm(VM);
    expect(startupEditBody(VM, { ...f, onBoot: false })).toEqual({ onBoot: { enabled: false } });
    expect(startupEditBody(VM, { ...f, delaySec: '0' })).toEqual({
      onBoot: { enabled: true, order: 1, delaySec: 0 },
    });
    expect(startupEditBody(BARE, { ...startupForm(BARE), onBoot: true, order: '4' })).toEqual({
      onBoot: { enabled: true, order: 4, delaySec: 0 },
    });
  });

  it('removes cloud-init with null when unticked', () => {
    expect(startupEditBody(VM, { ...startupForm(VM), cloudInit: false })).toEqual({ cloudInit: null });
  });

  it('needs the kept password typed again when other cloud-init fields change', () => {
    const f = { ...startupForm(VM), sshKeys: `${KEY}\n${KEY2}` };
    expect(passwordNeeded(VM, f)).toBe(true);
    // typed again: the whole settings go, with it
    expect(passwordNeeded(VM, { ...f, password: 'again' })).toBe(false);
    expect(startupEditBody(VM, { ...f, password: 'again' })).toEqual({
      cloudInit: { hostname: 'web-01', sshKeys: [KEY, KEY2], password: 'again' },
    });
    // or let go: no password
    expect(passwordNeeded(VM, { ...f, keepPassword: false })).toBe(false);
    expect(startupEditBody(VM, { ...f, keepPassword: false })).toEqual({
      cloudInit: { hostname: 'web-01', sshKeys: [KEY, KEY2] },
    });
    // a host name change too
    expect(passwordNeeded(VM, { ...startupForm(VM), hostname: 'web-02' })).toBe(true);
    // only unticking the keep box removes the password
    expect(startupEditBody(VM, { ...startupForm(VM), keepPassword: false })).toEqual({
      cloudInit: { hostname: 'web-01', sshKeys: [KEY] },
    });
    // a new password alone
    expect(startupEditBody(VM, { ...startupForm(VM), password: 'new' })).toEqual({
      cloudInit: { hostname: 'web-01', sshKeys: [KEY], password: 'new' },
    });
  });

  it('sends cloud-init as a whole when it is first ticked; no password question without one', () => {
    const noPassword = {
      ...VM,
      cloudInit: { ...VM.cloudInit!, passwordSet: false },
    } as Vm;
    const f = { ...startupForm(noPassword), hostname: 'web-02' };
    expect(f.keepPassword).toBe(false);
    expect(passwordNeeded(noPassword, f)).toBe(false);
    expect(startupEditBody(noPassword, f)).toEqual({ cloudInit: { hostname: 'web-02', sshKeys: [KEY] } });
    expect(startupEditBody(BARE, { ...startupForm(BARE), cloudInit: true, sshKeys: KEY })).toEqual({
      cloudInit: { sshKeys: [KEY] },
    });
  });

  it('only removes a cloud-init with a document the UI cannot show', () => {
    const own = {
      ...VM,
      cloudInit: { hostname: 'web-01', passwordSet: false, userData: true, networkConfig: false },
    } as Vm;
    expect(cloudInitLocked(own)).toBe(true);
    expect(cloudInitLocked(VM)).toBe(false);
    expect(cloudInitLocked(BARE)).toBe(false);
    expect(startupEditBody(own, { ...startupForm(own), hostname: 'other' })).toEqual({});
    expect(startupEditBody(own, { ...startupForm(own), cloudInit: false })).toEqual({ cloudInit: null });
  });

  it('says autostart and cloud-init in words', () => {
    expect(onBootLine(undefined)).toBe('off');
    expect(onBootLine({ enabled: false, order: 3, delaySec: 0 })).toBe('off');
    expect(onBootLine({ enabled: true, order: 1, delaySec: 30 })).toBe('order 1, then 30 s');
    expect(onBootLine({ enabled: true, order: 0, delaySec: 0 })).toBe('order 0');
    expect(cloudInitLine(undefined)).toBe('off');
    expect(
      cloudInitLine({
        hostname: 'web-01',
        sshKeys: [KEY, KEY2],
        passwordSet: true,
        userData: false,
        networkConfig: false,
      }),
    ).toBe('host name web-01, 2 SSH keys, password set');
    expect(cloudInitLine({ sshKeys: [KEY], passwordSet: false, userData: false, networkConfig: true })).toBe(
      '1 SSH key, network config',
    );
    expect(cloudInitLine({ passwordSet: false, userData: true, networkConfig: false })).toBe('own user-data');
    expect(cloudInitLine({ passwordSet: false, userData: false, networkConfig: false })).toMatch(/^on/);
  });
});
