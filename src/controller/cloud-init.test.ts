import { describe, expect, it } from 'vitest';
import { cloudInitRecord, cloudInitView, renderCloudInit } from './cloud-init';
import type { VmRecord } from './records';

const vm = { id: 'id-1', name: 'web' } as VmRecord;

describe('cloud-init seed', () => {
  it('hashes the password (SHA-512 crypt) and never shows it or the user-data', async () => {
    const rec = await cloudInitRecord({
      hostname: 'h1',
      sshKeys: ['ssh-ed25519 AAAA x@y'],
      password: 'p4ss"word',
    });
    expect(rec.passwordHash).toMatch(/^\$6\$/);
    expect(JSON.stringify(rec)).not.toContain('p4ss');
    expect(cloudInitView(rec)).toEqual({
      hostname: 'h1',
      sshKeys: ['ssh-ed25519 AAAA x@y'],
      passwordSet: true,
      userData: false,
      networkConfig: false,
    });
    const seed = renderCloudInit(vm, rec);
    expect(seed.metaData).toMatch(/^instance-id: "id-1-[0-9a-f]{12}"\nlocal-hostname: "h1"\n$/);
    // another setting, another instance: cloud-init applies keys and passwords again
    expect(renderCloudInit(vm, { ...rec, sshKeys: [] }).metaData).not.toBe(seed.metaData);
    expect(seed.userData).toContain(
      '#cloud-config\nhostname: "h1"\nssh_authorized_keys:\n  - "ssh-ed25519 AAAA x@y"\n',
    );
    expect(seed.userData).toContain(`    root:${rec.passwordHash}\n`);
  });

  it('takes a whole user-data document instead, but not beside keys or a password', async () => {
    const rec = await cloudInitRecord({
      userData: '#cloud-config\nruncmd: [true]\n',
      networkConfig: 'version: 2\n',
    });
    expect(renderCloudInit(vm, rec)).toMatchObject({
      userData: '#cloud-config\nruncmd: [true]\n',
      networkConfig: 'version: 2\n',
    });
    await expect(cloudInitRecord({ userData: '#cloud-config\n', password: 'x' })).rejects.toThrow(
      /either userData/,
    );
    await expect(cloudInitRecord({ userData: 'runcmd: []' })).rejects.toThrow(/#cloud-config or #!/);
  });
});
