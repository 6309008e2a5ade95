/**
 * Identities for programs under test: a ServiceAccount bound to a Role read from the
 * project's own RBAC files, and a kubeconfig carrying a token of it, so that the sidecar and
 * the operator run with exactly the permissions the README gives them, not as admin.
 */
import { readFileSync } from 'node:fs';
import { CoreV1Api, type KubeConfig, RbacAuthorizationV1Api, type V1Role } from '@kubernetes/client-node';
import { stringify } from 'yaml';

/** Creates `role` in `namespace` and binds it, under the same name, to the ServiceAccount. */
export async function bindRole(
  admin: KubeConfig,
  namespace: string,
  role: V1Role,
  serviceAccount: string,
): Promise<void> {
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const name = role.metadata?.name as string;
  await rbac.createNamespacedRole({ namespace, body: role });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
    },
  });
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
