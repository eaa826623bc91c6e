import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One Ceph lab for the run, started in the background (test/harness/ceph.ts sharedCephLab()).
    globalSetup: ['test/harness/global-setup.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'scripts/**/*.test.ts', 'ui/**/*.test.ts', 'tui/**/*.test.ts'],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // Each file boots real QEMU guests and etcd; two cores: keep files serial-ish.
          fileParallelism: true,
          maxWorkers: 2,
          // Units first; the slow real-guest files after them.
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'appliance',
          // The ISO booted in QEMU (TCG), driven through its serial console: slow, after everything else.
          include: ['test/appliance/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 900_000,
          sequence: { groupOrder: 3 },
        },
      },
      {
        test: {
          name: 'bench',
          // Every benchmark at its smoke size, so a change that breaks one fails CI; last, alone.
          include: ['test/bench/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          sequence: { groupOrder: 4 },
        },
      },
      {
        test: {
          name: 'e2e',
          // A headless Chromium (/usr/bin/chromium) drives the embedded web UI against a real daemon.
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
