// The `screamwatch` command's process entry for the built CLI (dist/cli.mjs, see
// scripts/build.mjs); bin/screamwatch.js does the same through tsx in a checkout.
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
