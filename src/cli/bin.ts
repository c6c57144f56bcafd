#!/usr/bin/env node
import v8 from 'node:v8';

/*
 * A long-running `kmslab serve` keeps a small heap: the young generation stays at its starting size
 * and the old generation grows by 20 % steps instead of V8's default factor. The live heap of a busy
 * host is about 10 MB; without this V8 lets it grow to 50+ MB of mostly garbage between collections.
 * Measured with kmsload (docs/benchmarks.md): peak RSS 72 MB instead of 120-200, keep-alive throughput
 * the same, new-connection throughput 8-17 % lower (more collections). These flags must be set before
 * anything allocates much, hence this tiny entry file that loads the CLI afterwards.
 * KMSLAB_V8_TUNING=0 keeps V8's defaults (for the last new-connection throughput, or your own flags).
 */
const command = process.argv.slice(2).find((a) => !a.startsWith('-'));
if (command === 'serve' && process.env['KMSLAB_V8_TUNING'] !== '0') {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString('--heap-growing-percent=20');
}

const { runCli } = await import('./run.js');
runCli(process.argv);
