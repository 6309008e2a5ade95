#!/usr/bin/env node
/**
 * sluice-sidecar: the per-pod proxy that enforces the pod's share of its budgets.
 * This entry point prints its version; the proxy itself arrives with its issue.
 */
import pkg from '../package.json' with { type: 'json' };

console.log(`sluice-sidecar ${pkg.version}`);
