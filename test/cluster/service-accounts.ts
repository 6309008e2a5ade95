/**
 * Identities for programs under test: the project's own RBAC files (ServiceAccount, roles
 * and bindings) applied to a test's namespace, and a kubeconfig carrying a token of the
 * ServiceAccount, so that the sidecar and the operator run with exactly the permissions
 * the README gives them, not as admin.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type V1ClusterRoleBinding,
  type V1RoleBinding,
} from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { repoRoot } from './process.js';

/** The namespace operator/rbac.yaml names; the README tells users to substitute it. */
export const operatorRbacNamespace = 'sluice-system';

export type RbacFile = 'operator/rbac.yaml' | 'sidecar/rbac.yaml';

const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding']);

/**
 * The objects of an RBAC file as a user applies them to `namespace`: the operator's with
 * its namespace substituted as the README says (`sed 's/namespace: sluice-system/…/'`),
 * the sidecar's with `kubectl apply -n`. Tests share a cluster, so cluster-scoped objects
 * (and the bindings' references to them) get the namespace appended to their names;
 * nothing else changes.
 */
export function shippedRbac(file: RbacFile, namespace: string): KubernetesObject[] {
  const text = readFileSync(join(repoRoot, file), 'utf8').replaceAll(
    `namespace: ${operatorRbacNamespace}`,
    `namespace: ${namespace}`,
  );
  return parseAllDocuments(text).map((document) => {
    const object = document.toJS() as KubernetesObject & Partial<V1RoleBinding>;
    const metadata = object.metadata ?? {};
    if (clusterScoped.has(object.kind as string)) metadata.name = `${metadata.name}-${namespace}`;
    else metadata.namespace ??= namespace;
    if (object.roleRef?.kind === 'ClusterRole') object.roleRef.name = `${object.roleRef.name}-${namespace}`;
    return { ...object, metadata };
  });
}

/** The name of the one ServiceAccount the file ships. */
export function serviceAccountOf(objects: readonly KubernetesObject[]): string {
  const accounts = objects.filter((o) => o.kind === 'ServiceAccount');
  if (accounts.length !== 1) throw new Error(`Expected one ServiceAccount, found ${accounts.length}`);
  return accounts[0]?.metadata?.name as string;
}

/** The ServiceAccounts the file's bindings grant to, as `namespace:name` (a missing namespace: the binding's). */
export function boundServiceAccounts(objects: readonly KubernetesObject[]): string[] {
  return objects
    .filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')
    .flatMap((o) =>
      ((o as V1RoleBinding | V1ClusterRoleBinding).subjects ?? [])
        .filter((s) => s.kind === 'ServiceAccount')
        .map((s) => `${s.namespace ?? o.metadata?.namespace}:${s.name}`),
    );
}

/** Creates the objects through the API; returns what deletes the cluster-scoped ones again. */
export async function applyRbac(admin: KubeConfig, objects: readonly KubernetesObject[]): Promise<() => Promise<void>> {
  const client = KubernetesObjectApi.makeApiClient(admin);
  const created: KubernetesObject[] = [];
  const remove = async () => {
    for (const object of created.reverse()) {
      await client
        .delete({ apiVersion: object.apiVersion, kind: object.kind, metadata: object.metadata })
        .catch(() => {});
    }
  };
  try {
    for (const object of objects) {
      await client.create(object);
      if (clusterScoped.has(object.kind as string)) created.push(object);
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return remove;
}

/** A token of the ServiceAccount from the TokenRequest API. */
export async function serviceAccountToken(
  admin: KubeConfig,
  namespace: string,
  serviceAccount: string,
): Promise<string> {
  const token = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 7200 } },
  });
  return token.status?.token as string;
}

/** A kubeconfig (YAML) for the admin's cluster that authenticates with a ServiceAccount token. */
export async function serviceAccountKubeconfig(
  admin: KubeConfig,
  namespace: string,
  serviceAccount: string,
): Promise<string> {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('The admin kubeconfig names no cluster');
  const ca = cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : undefined);
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority-data': ca } }],
    users: [{ name: serviceAccount, user: { token: await serviceAccountToken(admin, namespace, serviceAccount) } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: serviceAccount, namespace } }],
    'current-context': 'test',
  });
}
