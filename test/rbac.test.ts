/**
 * The RBAC files as a user applies them, with kubectl: the sidecar's as it is with `-n`, the
 * operator's with its namespace substituted as its header says. Then `kubectl auth can-i
 * --as` each ServiceAccount the files ship: it may do every call its program makes, and
 * nothing next to them (no secrets, no spec of what the other program owns, no other
 * namespace's election).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { repoRoot } from './cluster/process.js';
import {
  boundServiceAccounts,
  operatorRbacNamespace,
  serviceAccountOf,
  shippedRbac,
} from './cluster/service-accounts.js';
import { type TestCluster, testCluster, testNamespace } from './cluster/test-cluster.js';
import { waitFor } from './support/wait.js';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** One question to the authorizer: a verb on a resource (`resource/name`), in a namespace or in all. */
interface Access {
  verb: string;
  resource: string;
  subresource?: string;
  namespace: string | 'all';
}

function describeAccess(a: Access): string {
  const where = a.namespace === 'all' ? 'in all namespaces' : `in ${a.namespace}`;
  return `${a.verb} ${a.resource}${a.subresource ? ` (${a.subresource})` : ''} ${where}`;
}

/** `kubectl auth can-i … --as=system:serviceaccount:…`: the API server's own SubjectAccessReview. */
async function canI(cluster: TestCluster, user: string, access: Access): Promise<boolean> {
  const out = await cluster.kubectl([
    'auth',
    'can-i',
    access.verb,
    access.resource,
    ...(access.subresource ? [`--subresource=${access.subresource}`] : []),
    ...(access.namespace === 'all' ? ['--all-namespaces'] : [`--namespace=${access.namespace}`]),
    `--as=${user}`,
  ]);
  if (out.stdout.trim() === 'yes') return true;
  if (out.stdout.trim() === 'no') return false;
  throw new Error(`kubectl auth can-i failed (${out.code}): ${out.stderr}`);
}

/** Asks every question at once; fails listing each answer that differs. */
async function assertAccess(cluster: TestCluster, user: string, allowed: Access[], denied: Access[]): Promise<void> {
  // Bindings reach the authorizer through its watch: wait until the first one has.
  await waitFor(`${user} to be bound`, () => canI(cluster, user, allowed[0] as Access));
  const answers = await Promise.all(
    [...allowed, ...denied].map(async (access) => ({ access, yes: await canI(cluster, user, access) })),
  );
  const wrong = answers
    .filter(({ access, yes }) => yes !== allowed.includes(access))
    .map(({ access, yes }) => `${yes ? 'may' : 'may not'} ${describeAccess(access)}`);
  assert.deepEqual(wrong, []);
}

const sluice = (resource: string) => `${resource}.sluice.dev`;

describe('sidecar/rbac.yaml', () => {
  test('applied with kubectl apply -n, lets the pods of that namespace do what the sidecar does and no more', async () => {
    const cluster = await testCluster();
    const namespace = await testNamespace('rbac-sidecar');
    const elsewhere = await testNamespace('rbac-elsewhere');
    const objects = shippedRbac('sidecar/rbac.yaml', namespace);
    assert.deepEqual(
      objects.map((o) => o.kind),
      ['ServiceAccount', 'Role', 'RoleBinding'],
      'namespaced objects only, so that -n places them all',
    );
    const account = serviceAccountOf(objects);
    assert.deepEqual(
      boundServiceAccounts(objects),
      [`${namespace}:${account}`],
      'bound to the ServiceAccount it ships',
    );

    // Exactly what the header tells a user to run.
    const applied = await cluster.kubectl(['apply', '-n', namespace, '-f', join(repoRoot, 'sidecar/rbac.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);

    const here = (verb: string, resource: string, subresource?: string): Access => ({
      verb,
      resource,
      namespace,
      ...(subresource && { subresource }),
    });
    const allowed: Access[] = [
      // Its informers: the namespace's budgets, its own leases, its own pod.
      ...['list', 'watch', 'get'].flatMap((verb) => [
        here(verb, sluice('streambudgets')),
        here(verb, sluice('streamleases')),
        here(verb, 'pods'),
      ]),
      // Acknowledgements and heartbeats: a merge patch of the status subresource.
      here('patch', sluice('streamleases'), 'status'),
    ];
    const denied: Access[] = [
      // The lease's spec is the operator's: its grant above all.
      here('patch', sluice('streamleases')),
      here('update', sluice('streamleases')),
      here('create', sluice('streamleases')),
      here('delete', sluice('streamleases')),
      here('update', sluice('streamleases'), 'status'),
      here('patch', sluice('streambudgets')),
      here('patch', sluice('streambudgets'), 'status'),
      here('get', 'secrets'),
      here('list', 'secrets'),
      here('get', 'configmaps'),
      here('patch', 'pods'),
      here('delete', 'pods'),
      here('create', 'events'),
      here('create', 'serviceaccounts', 'token'),
      // Another namespace is not its business.
      { verb: 'list', resource: sluice('streambudgets'), namespace: elsewhere },
      { verb: 'list', resource: 'pods', namespace: elsewhere },
      { verb: 'patch', resource: sluice('streamleases'), subresource: 'status', namespace: elsewhere },
    ];
    await assertAccess(cluster, `system:serviceaccount:${namespace}:${account}`, allowed, denied);

    // Pods with a ServiceAccount of their own: the one-line binding the header gives.
    const bound = await cluster.kubectl([
      'create',
      'rolebinding',
      'sluice-sidecar-voicebot',
      `--namespace=${namespace}`,
      '--role=sluice-sidecar',
      `--serviceaccount=${namespace}:voicebot`,
    ]);
    assert.equal(bound.code, 0, bound.stderr);
    await assertAccess(
      cluster,
      `system:serviceaccount:${namespace}:voicebot`,
      [here('patch', sluice('streamleases'), 'status'), here('watch', sluice('streamleases'))],
      [here('patch', sluice('streamleases')), here('list', 'secrets')],
    );
  });
});

describe('operator/rbac.yaml', () => {
  test('refuses kubectl apply -n: its objects name their namespace', async () => {
    const cluster = await testCluster();
    const namespace = await testNamespace('rbac-refused');
    // A client-side dry run: nothing reaches the shared cluster, the namespace check still runs.
    const out = await cluster.kubectl([
      'apply',
      '--dry-run=client',
      '-n',
      namespace,
      '-f',
      join(repoRoot, 'operator/rbac.yaml'),
    ]);
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, new RegExp(`namespace.*${operatorRbacNamespace}.*does not match`));
  });

  test('with its namespace substituted, lets the operator do what it does and no more', async () => {
    const cluster = await testCluster();
    const namespace = await testNamespace('rbac-operator');
    const budgets = await testNamespace('rbac-budgets');
    const objects = shippedRbac('operator/rbac.yaml', namespace);
    assert.deepEqual(
      objects.map((o) => o.kind),
      ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'],
    );
    assert.ok(!JSON.stringify(objects).includes(operatorRbacNamespace), 'the substitution reaches every namespace');
    for (const object of objects.filter((o) => !o.kind?.startsWith('Cluster'))) {
      assert.equal(object.metadata?.namespace, namespace, `${object.kind} names its namespace`);
    }
    const account = serviceAccountOf(objects);
    assert.deepEqual(boundServiceAccounts(objects), [`${namespace}:${account}`, `${namespace}:${account}`]);

    const applied = await cluster.kubectl(['apply', '-f', '-'], {
      input: objects.map((o) => stringify(o)).join('---\n'),
    });
    assert.equal(applied.code, 0, applied.stderr);
    for (const kind of ['clusterrole', 'clusterrolebinding']) {
      cleanups.push(() => cluster.kubectl(['delete', kind, `sluice-operator-${namespace}`, '--ignore-not-found']));
    }

    const all = (verb: string, resource: string): Access => ({ verb, resource, namespace: 'all' });
    const there = (verb: string, resource: string, subresource?: string): Access => ({
      verb,
      resource,
      namespace: budgets,
      ...(subresource && { subresource }),
    });
    const own = (verb: string, resource: string): Access => ({ verb, resource, namespace });
    const election = 'leases.coordination.k8s.io';
    const allowed: Access[] = [
      // Its informers, across namespaces.
      ...['list', 'watch', 'get'].flatMap((verb) => [
        all(verb, sluice('streambudgets')),
        all(verb, sluice('streamleases')),
        all(verb, 'pods'),
      ]),
      // The budget's finalizer and status.
      there('patch', sluice('streambudgets')),
      there('patch', sluice('streambudgets'), 'status'),
      // Leases: created, granted, released.
      there('create', sluice('streamleases')),
      there('patch', sluice('streamleases')),
      there('delete', sluice('streamleases')),
      there('create', 'events'),
      // Its election, in its own namespace, on its own Lease.
      own('create', election),
      own('get', `${election}/sluice-operator`),
      own('update', `${election}/sluice-operator`),
    ];
    const denied: Access[] = [
      all('get', 'secrets'),
      all('list', 'secrets'),
      own('get', 'secrets'),
      all('list', 'configmaps'),
      // Budgets are the user's.
      there('create', sluice('streambudgets')),
      there('update', sluice('streambudgets')),
      there('delete', sluice('streambudgets')),
      there('update', sluice('streambudgets'), 'status'),
      // A lease's status is its sidecar's.
      there('patch', sluice('streamleases'), 'status'),
      there('update', sluice('streamleases'), 'status'),
      there('update', sluice('streamleases')),
      there('create', 'pods'),
      there('patch', 'pods'),
      there('delete', 'pods'),
      there('patch', 'events'),
      there('create', 'serviceaccounts', 'token'),
      // No election elsewhere, and no other holder's Lease.
      there('create', election),
      own('list', election),
      own('get', `${election}/kube-controller-manager`),
      own('update', `${election}/kube-controller-manager`),
      own('delete', `${election}/sluice-operator`),
      own('create', 'rolebindings.rbac.authorization.k8s.io'),
    ];
    await assertAccess(cluster, `system:serviceaccount:${namespace}:${account}`, allowed, denied);
  });
});
