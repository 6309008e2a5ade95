/**
 * `npm run cluster`: a local control plane in the foreground with sluice's CRDs
 * installed, for trying sluice with kubectl and helm. Ctrl-C stops it and removes
 * everything it made.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { binDir, ControlPlane } from './control-plane.js';
import { crdManifests } from './crds.js';
import { repoRoot } from './process.js';

const usage = `Usage: npm run cluster [-- --help]

Starts etcd, kube-apiserver and kube-controller-manager on loopback with the sluice
CRDs installed, writes an admin kubeconfig to $KUBECONFIG (or .cache/cluster/kubeconfig
when it is unset), and runs until Ctrl-C.`;

if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  console.log(usage);
  process.exit(0);
}
const unknown = process.argv.slice(2);
if (unknown.length > 0) {
  console.error(`Unknown argument ${unknown[0]}\n\n${usage}`);
  process.exit(2);
}

const kubeconfig = process.env.KUBECONFIG || join(repoRoot, '.cache', 'cluster', 'kubeconfig');
if (kubeconfig.includes(':')) {
  console.error(`KUBECONFIG holds a list of files (${kubeconfig}); point it at one file for the local cluster.`);
  process.exit(2);
}
// Never overwrite somebody's real kubeconfig: only one this command wrote before.
if (existsSync(kubeconfig) && !readFileSync(kubeconfig, 'utf8').includes('sluice-local')) {
  console.error(`${kubeconfig} exists and is not a sluice local kubeconfig; refusing to overwrite it.`);
  console.error('Unset KUBECONFIG, or point it at a new file.');
  process.exit(2);
}

let plane: ControlPlane | undefined;
let stopping = false;
async function stop(code = 0): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.log('\nStopping the control plane...');
    await plane?.stop();
    rmSync(kubeconfig, { force: true });
    console.log('Stopped; nothing left behind.');
  }
  process.exit(code);
}
// Registered before the start, so Ctrl-C during it still cleans up.
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

try {
  const started = Date.now();
  plane = await ControlPlane.start({ crds: crdManifests });
  if (stopping) await stop();
  mkdirSync(dirname(kubeconfig), { recursive: true });
  writeFileSync(kubeconfig, readFileSync(plane.kubeconfigPath), { mode: 0o600 });
  const version = await plane.kubectl(['version', '-o', 'json']);
  const server = (JSON.parse(version.stdout || '{}') as { serverVersion?: { gitVersion?: string } }).serverVersion;
  console.log(`Control plane ready at ${plane.server} in ${((Date.now() - started) / 1000).toFixed(1)} s
(Kubernetes ${server?.gitVersion ?? 'unknown'}; logs in ${plane.dir}).

Use it from another shell:
  export KUBECONFIG=${kubeconfig}
  export PATH=${binDir}:$PATH     # kubectl and helm of the same version
  kubectl apply -f crds/examples/flux-budget.yaml
  kubectl get streambudgets
  kubectl explain streambudget.spec
  helm list -A

Press Ctrl-C to stop it.`);
} catch (error) {
  console.error(`The control plane failed: ${(error as Error).message}`);
  await stop(1);
}
