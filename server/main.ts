#!/usr/bin/env node
// The server (ingest, storage, classification, API) is not built yet: say so plainly.
process.stderr.write('quicksand-server: not available in this version yet. Use `quicksand-agent scan` or `quicksand-agent audit` on each host.\n');
process.exitCode = 2;
