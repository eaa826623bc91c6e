// Runs every benchmark in turn; each records its own figures.
await import('./single-host');
await import('./agent');
await import('./ui');
await (await import('./scheduler')).runSchedulerBench();
await import('./cluster');
await import('./storage');
await import('./migration');
await import('./ha');
await import('./hardware');
await import('./import');
await import('./backup');
await import('./network');
await import('./appliance');

export {};
