#!/usr/bin/env node
// Entry point for `npx screamwatch`. The project ships TypeScript sources and runs
// them through tsx's loader, so there is no build step a user has to remember.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
