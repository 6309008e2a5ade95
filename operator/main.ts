#!/usr/bin/env node
/**
 * sluice-operator: splits each StreamBudget across the pods that share it.
 * This entry point prints its version; the controller itself arrives with its issue.
 */
import pkg from '../package.json' with { type: 'json' };

console.log(`sluice-operator ${pkg.version}`);
