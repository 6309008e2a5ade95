/**
 * A real Kubernetes control plane on loopback for tests and the demo: etcd,
 * kube-apiserver (RBAC, admission webhooks, service-account tokens) and
 * kube-controller-manager (garbage collector, namespaces, service accounts). No
 * scheduler and no kubelet: pods stay Pending, which is all sluice needs of them.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { installCrds } from './crds.js';
import { CertificateAuthority, type KeyPair, serviceAccountKeys } from './pki.js';
import { forgetDirectory, ManagedProcess, reapDirectoryOnExit, repoRoot } from './process.js';

const run = promisify(execFile);

/** Where build-binaries.sh puts the control-plane binaries. */
export const binDir = join(repoRoot, '.cache', 'bin');

export interface ControlPlaneOptions {
  /** Parent of the control plane's temporary directory; the system's temp dir by default. */
  tmpRoot?: string;
  /** How long to wait for the whole control plane to be ready. */
  readyTimeoutMs?: number;
  /**
   * CRD manifests to install before the controllers start, so that the garbage
   * collector knows their kinds from the start instead of at its next discovery
   * (every 30 s).
   */
  crds?: string[];
}

interface Ports {
  etcdClient: number;
  etcdPeer: number;
  apiServer: number;
  controllerManager: number;
}

/** Free loopback ports, all held open until every one is found so they are distinct. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      return server;
    }),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** GET over HTTPS on loopback; resolves with the status code, or 0 when nothing answered. */
function probe(url: string, tls: { ca?: string; cert?: string; key?: string }): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { ...tls, rejectUnauthorized: tls.ca !== undefined, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function kubeconfigYaml(server: string, ca: string, user: string, credentials: Record<string, string>): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'sluice-local', cluster: { server, 'certificate-authority-data': Buffer.from(ca).toString('base64') } },
    ],
    users: [{ name: user, user: credentials }],
    contexts: [{ name: 'sluice-local', context: { cluster: 'sluice-local', user } }],
    'current-context': 'sluice-local',
  });
}

function certificateCredentials(pair: KeyPair): Record<string, string> {
  return {
    'client-certificate-data': Buffer.from(pair.certificate).toString('base64'),
    'client-key-data': Buffer.from(pair.privateKey).toString('base64'),
  };
}

/** A running control plane. `start()` builds one; `stop()` leaves nothing behind. */
export class ControlPlane {
  readonly dir: string;
  readonly server: string;
  /** The admin kubeconfig (user `sluice-admin` in `system:masters`). */
  readonly kubeconfigPath: string;
  readonly #ports: Ports;
  readonly #ca: CertificateAuthority;
  readonly #admin: KeyPair;
  #etcd: ManagedProcess | undefined;
  #apiServer: ManagedProcess | undefined;
  #controllerManager: ManagedProcess | undefined;
  #stopped = false;

  private constructor(dir: string, ports: Ports, ca: CertificateAuthority, admin: KeyPair) {
    this.dir = dir;
    this.#ports = ports;
    this.#ca = ca;
    this.#admin = admin;
    this.server = `https://127.0.0.1:${ports.apiServer}`;
    this.kubeconfigPath = join(dir, 'admin.kubeconfig');
  }

  /** Starts etcd, kube-apiserver and kube-controller-manager and waits until they serve. */
  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    for (const binary of ['etcd', 'kube-apiserver', 'kube-controller-manager']) {
      if (!existsSync(join(binDir, binary))) {
        throw new Error(`${join(binDir, binary)} is missing: run \`npm run setup\` first`);
      }
    }
    const root = options.tmpRoot ?? tmpdir();
    mkdirSync(root, { recursive: true });
    const dir = mkdtempSync(join(root, 'sluice-control-plane-'));
    reapDirectoryOnExit(dir);
    const [etcdClient, etcdPeer, apiServer, controllerManager] = (await freePorts(4)) as [
      number,
      number,
      number,
      number,
    ];
    const ca = await CertificateAuthority.create('sluice-local-ca');
    const admin = await ca.client('sluice-admin', ['system:masters']);
    const plane = new ControlPlane(dir, { etcdClient, etcdPeer, apiServer, controllerManager }, ca, admin);
    try {
      await plane.#writeFiles();
      await plane.#startEtcd();
      await plane.startApiServer();
      if (options.crds?.length) await installCrds((args) => plane.kubectl(args), options.crds);
      await plane.#startControllerManager();
      await plane.#waitForServiceAccounts(options.readyTimeoutMs ?? 60_000);
    } catch (error) {
      await plane.stop();
      throw error;
    }
    return plane;
  }

  async #writeFiles(): Promise<void> {
    const ca = this.#ca;
    const serving = await ca.serving('kube-apiserver', {
      dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      ips: ['127.0.0.1'],
    });
    const controllerManager = await ca.client('system:kube-controller-manager');
    const sa = await serviceAccountKeys();
    const files: Record<string, string> = {
      'ca.crt': ca.certificate,
      'apiserver.crt': serving.certificate,
      'apiserver.key': serving.privateKey,
      'sa.key': sa.privateKey,
      'sa.pub': sa.publicKey,
      'admin.kubeconfig': kubeconfigYaml(
        this.server,
        ca.certificate,
        'sluice-admin',
        certificateCredentials(this.#admin),
      ),
      'controller-manager.kubeconfig': kubeconfigYaml(
        this.server,
        ca.certificate,
        'system:kube-controller-manager',
        certificateCredentials(controllerManager),
      ),
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(this.dir, name), content, { mode: 0o600 });
  }

  async #startEtcd(): Promise<void> {
    const { etcdClient, etcdPeer } = this.#ports;
    this.#etcd = new ManagedProcess({
      name: 'etcd',
      command: join(binDir, 'etcd'),
      args: [
        '--name=sluice',
        `--data-dir=${join(this.dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=sluice=http://127.0.0.1:${etcdPeer}`,
        '--listen-metrics-urls=',
        // A test cluster's data is disposable: durability would only cost time.
        '--unsafe-no-fsync',
        '--quota-backend-bytes=1073741824',
        '--log-level=warn',
      ],
      logFile: join(this.dir, 'etcd.log'),
    });
    await this.#waitFor(this.#etcd, 20_000, async () => {
      const res = await fetch(`http://127.0.0.1:${etcdClient}/health`, { signal: AbortSignal.timeout(2000) }).catch(
        () => undefined,
      );
      return res?.ok === true;
    });
  }

  /**
   * Starts kube-apiserver (again, after `stopApiServer()`), on the same port, and waits
   * for /readyz. Tests use the pair to cut clients off from the API for a while.
   */
  async startApiServer(): Promise<void> {
    if (this.#apiServer?.running) return;
    const { etcdClient, apiServer } = this.#ports;
    const dir = this.dir;
    this.#apiServer = new ManagedProcess({
      name: 'kube-apiserver',
      command: join(binDir, 'kube-apiserver'),
      args: [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiServer}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        `--client-ca-file=${join(dir, 'ca.crt')}`,
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--authorization-mode=RBAC',
        '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy',
        '--service-cluster-ip-range=10.96.0.0/16',
        // No kubelets and no node network: the "kubernetes" Service needs no endpoints.
        '--endpoint-reconciler-type=none',
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ],
      logFile: join(dir, 'kube-apiserver.log'),
    });
    const tls = { ca: this.#ca.certificate, cert: this.#admin.certificate, key: this.#admin.privateKey };
    await this.#waitFor(this.#apiServer, 60_000, async () => (await probe(`${this.server}/readyz`, tls)) === 200);
  }

  /** Stops kube-apiserver alone; etcd and the controller manager keep running. */
  async stopApiServer(): Promise<void> {
    await this.#apiServer?.stop();
  }

  async #startControllerManager(): Promise<void> {
    const dir = this.dir;
    const kubeconfig = join(dir, 'controller-manager.kubeconfig');
    this.#controllerManager = new ManagedProcess({
      name: 'kube-controller-manager',
      command: join(binDir, 'kube-controller-manager'),
      args: [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${this.#ports.controllerManager}`,
        `--cert-dir=${join(dir, 'controller-manager-certs')}`,
        '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller',
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${join(dir, 'ca.crt')}`,
        '--use-service-account-credentials=true',
        '--leader-elect=false',
        '--v=1',
      ],
      logFile: join(dir, 'kube-controller-manager.log'),
    });
    const url = `https://127.0.0.1:${this.#ports.controllerManager}/healthz`;
    await this.#waitFor(this.#controllerManager, 60_000, async () => (await probe(url, {})) === 200);
  }

  /** The controllers are really working once the default namespace has its service account. */
  async #waitForServiceAccounts(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const result = await this.kubectl(['get', 'serviceaccount', 'default', '--namespace=default', '-o', 'name']);
      if (result.code === 0) return;
      await sleep(200);
    }
    throw new Error(
      `kube-controller-manager did not create the default service account within ${timeoutMs} ms:\n${this.#controllerManager?.logTail()}`,
    );
  }

  async #waitFor(proc: ManagedProcess, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!proc.running) {
        throw new Error(`${proc.name} exited (${JSON.stringify(proc.exit)}) while starting:\n${proc.logTail()}`);
      }
      if (await ready()) return;
      await sleep(100);
    }
    throw new Error(`${proc.name} was not ready within ${timeoutMs} ms:\n${proc.logTail()}`);
  }

  /** A client configuration for the admin user. */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromFile(this.kubeconfigPath);
    return config;
  }

  /** The CA that signs the API server's certificate, PEM-encoded. */
  get caCertificate(): string {
    return this.#ca.certificate;
  }

  /** A kubeconfig for another user, authenticated by a client certificate or a bearer token. */
  async kubeconfigFor(
    credentials: { user: string; groups?: string[] } | { token: string; user?: string },
  ): Promise<string> {
    if ('token' in credentials) {
      return kubeconfigYaml(this.server, this.#ca.certificate, credentials.user ?? 'token-user', {
        token: credentials.token,
      });
    }
    const pair = await this.#ca.client(credentials.user, credentials.groups);
    return kubeconfigYaml(this.server, this.#ca.certificate, credentials.user, certificateCredentials(pair));
  }

  /** Runs the kubectl of the API server's own version against this control plane. */
  async kubectl(
    args: string[],
    options: { input?: string } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return runTool('kubectl', [`--kubeconfig=${this.kubeconfigPath}`, ...args], options.input);
  }

  /** Process ids of the running components, for tests of the clean-up. */
  get pids(): number[] {
    return [this.#etcd, this.#apiServer, this.#controllerManager]
      .filter((p): p is ManagedProcess => p?.running === true)
      .map((p) => p.pid)
      .filter((pid): pid is number => pid !== undefined);
  }

  /** Stops every process (controller manager, API server, etcd, in that order) and removes the directory. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#controllerManager?.stop();
    await this.#apiServer?.stop();
    await this.#etcd?.stop();
    rmSync(this.dir, { recursive: true, force: true });
    forgetDirectory(this.dir);
  }
}

/** Runs kubectl or helm from .cache/bin; never throws on a non-zero exit, and gives up after two minutes. */
export async function runTool(
  tool: 'kubectl' | 'helm',
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = run(join(binDir, tool), args, { maxBuffer: 64 * 1024 * 1024, timeout: 120_000, killSignal: 'SIGKILL' });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      stdout: failed.stdout ?? '',
      stderr: failed.stderr ?? failed.message,
    };
  }
}

export { repoRoot };
