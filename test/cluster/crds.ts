/**
 * Installs sluice's CRDs into a cluster and waits until the API serves them.
 */
import { join } from 'node:path';
import { repoRoot } from './process.js';

export const crdManifests = ['streambudgets.sluice.dev.yaml', 'streamleases.sluice.dev.yaml'].map((file) =>
  join(repoRoot, 'crds', file),
);

type Kubectl = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Applies the CRDs (server-side, so reapplying is harmless) and waits for them to be established. */
export async function installCrds(kubectl: Kubectl, manifests = crdManifests): Promise<void> {
  const files = manifests.flatMap((file) => ['-f', file]);
  const applied = await kubectl(['apply', '--server-side', '--field-manager=sluice-install', ...files]);
  if (applied.code !== 0) throw new Error(`Installing the CRDs failed: ${applied.stderr}`);
  const established = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...files]);
  if (established.code !== 0) throw new Error(`The CRDs were not established: ${established.stderr}`);
}
