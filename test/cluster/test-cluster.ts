/**
 * The control plane a test file works against. Under `npm test` the runner starts one
 * for the whole run and passes its kubeconfig down; a file run on its own starts its
 * own. Each test works in a namespace of its own.
 */
import { after } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ControlPlane, runTool } from './control-plane.js';
import { crdManifests } from './crds.js';

/** Set by the test runner to the shared control plane's admin kubeconfig. */
export const sharedKubeconfigVariable = 'SLUICE_TEST_KUBECONFIG';

export interface TestCluster {
  kubeconfigPath: string;
  kubeConfig(): KubeConfig;
  kubectl(args: string[], options?: { input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
}

class ExistingCluster implements TestCluster {
  constructor(readonly kubeconfigPath: string) {}

  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromFile(this.kubeconfigPath);
    return config;
  }

  kubectl(args: string[], options: { input?: string } = {}) {
    return runTool('kubectl', [`--kubeconfig=${this.kubeconfigPath}`, ...args], options.input);
  }
}

let cluster: Promise<TestCluster> | undefined;
let ownPlane: ControlPlane | undefined;
const namespaces: string[] = [];

// Registered when the module loads, so they run once, after every test of the file.
after(async () => {
  if (namespaces.length > 0) {
    const kube = (await testCluster()).kubeConfig().makeApiClient(CoreV1Api);
    await Promise.all(namespaces.map((name) => kube.deleteNamespace({ name }).catch(() => undefined)));
  }
  await ownPlane?.stop();
});

/** The control plane for this test file, with the CRDs installed. */
export function testCluster(): Promise<TestCluster> {
  if (!cluster) {
    const shared = process.env[sharedKubeconfigVariable];
    if (shared) {
      cluster = Promise.resolve(new ExistingCluster(shared));
    } else {
      cluster = ControlPlane.start({ crds: crdManifests }).then((plane) => {
        ownPlane = plane;
        return plane;
      });
    }
  }
  return cluster;
}

let counter = 0;

/** Creates a namespace for one test, deleted (without waiting for it to go) when the file's tests end. */
export async function testNamespace(prefix = 'test'): Promise<string> {
  const kube = (await testCluster()).kubeConfig().makeApiClient(CoreV1Api);
  counter += 1;
  const name = `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 6)}`.slice(0, 63);
  await kube.createNamespace({ body: { metadata: { name, labels: { 'sluice.dev/test': 'true' } } } });
  namespaces.push(name);
  return name;
}
