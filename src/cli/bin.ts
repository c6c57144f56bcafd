#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildProgram } from './main.js';

buildProgram()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`kmslab: ${(e as Error).message}\n`);
    process.exitCode = 3;
  });
