/**
 * DRS policy constants shared by the controller, the CLI and the web UI; no imports, so the UI bundle
 * can take it without pulling in server code.
 */

/** The load gap (0..1) between the busiest and the idlest host tolerated at each threshold (1..5). */
export const TOLERANCE: Readonly<Record<number, number>> = { 1: 0.4, 2: 0.3, 3: 0.2, 4: 0.15, 5: 0.1 };
