/**
 * `npm run demo`: the whole system on a local control plane — a StreamBudget, the
 * operator, sidecars acting as pods, the upstream emulator as referee — under a load
 * whose demand moves between the pods. A live table every second, a summary at the
 * end; Ctrl-C (or any failure) stops every process it started.
 */
import { CoreV1Api } from '@kubernetes/client-node';
import { acknowledged, type StreamBudget, type StreamLease } from '../crds/api/index.js';
import { ControlPlane } from './cluster/control-plane.js';
import { crdManifests } from './cluster/crds.js';
import { renderSnapshot, Screen } from './demo/dashboard.js';
import { LoadGenerator } from './demo/load-generator.js';
import { type DemoOptions, parseDemoOptions, UsageError, usage } from './demo/options.js';
import { type Phase, phaseAt, phases } from './demo/schedule.js';
import { type Outcome, renderSummary, type Sample } from './demo/summary.js';
import { LocalFleet } from './fleet/local-fleet.js';

const namespace = 'sluice-demo';
const sampleEveryMs = 250;
const redrawEveryMs = 1000;

let options: DemoOptions;
try {
  const parsed = parseDemoOptions(process.argv.slice(2));
  if (parsed === 'help') {
    console.log(usage);
    process.exit(0);
  }
  options = parsed;
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`${error.message}\n\n${usage}`);
  process.exit(2);
}

const podNames = Array.from({ length: options.pods }, (_, i) => `voicebot-${i}`);
const screen = new Screen();
let interrupts = 0;
let wake: (() => void) | undefined;

// Registered before anything starts, so Ctrl-C during the start still cleans up. One Ctrl-C
// can arrive twice (from the terminal, and relayed by npm): signals within a second count once.
// A closed terminal (SIGHUP) stops the demo the same way; its output then goes nowhere.
let lastInterrupt = 0;
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (Date.now() - lastInterrupt < 1000) return;
    lastInterrupt = Date.now();
    interrupts += 1;
    if (interrupts === 1) screen.print('\nStopping...');
    else if (interrupts === 2)
      screen.print('Still stopping; Ctrl-C once more to quit at once (the reaper removes what is left).');
    else process.exit(130);
    wake?.();
  });
}

/** Waits `ms`, or less if interrupted. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wake = undefined;
      resolve();
    }
    wake = done;
  });
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** Creates the namespace, the fleet's budget and referee, the pods' sidecars and the operator. */
async function startFleet(plane: ControlPlane, onCreated: (fleet: LocalFleet) => void): Promise<LocalFleet> {
  const admin = plane.kubeConfig();
  await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  const fleet = await LocalFleet.create({ admin, namespace, limit: options.limit, queueTimeoutMs: 2000 });
  onCreated(fleet);
  // Sidecars and the operator start side by side: a pod has no grant until the operator gives one.
  const started = await Promise.allSettled([...podNames.map((name) => fleet.addPod(name)), fleet.startOperator()]);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  // Load starts once every pod holds a grant it has put in force.
  const deadline = Date.now() + 60_000;
  while (interrupts === 0) {
    const leases = await fleet.leases().catch(() => []);
    const ready = leases.filter((l) => acknowledged(l) && l.spec.grant.concurrency > 0);
    if (ready.length === options.pods) break;
    if (Date.now() > deadline) {
      throw new Error(`Only ${ready.length} of ${options.pods} pods acknowledged a grant within 60 s`);
    }
    await pause(200);
  }
  return fleet;
}

/** Throws if a process of the fleet ended on its own, with the end of its output. */
function checkProcesses(fleet: LocalFleet): void {
  const scripts = [
    ...[...fleet.pods.values()].map((p) => ({ what: `the sidecar of ${p.name}`, script: p.sidecar?.script })),
    ...fleet.operators.map((o) => ({ what: o.identity, script: o.script })),
  ];
  for (const { what, script } of scripts) {
    if (!script) continue;
    const { exitCode, signalCode } = script.child;
    if (exitCode === null && signalCode === null) continue;
    const tail = script.output().trimEnd().split('\n').slice(-15).join('\n');
    throw new Error(`${what} exited (${exitCode ?? signalCode}); its last output:\n${tail}`);
  }
}

interface Observed {
  budget: StreamBudget | undefined;
  leases: StreamLease[];
}

async function observe(fleet: LocalFleet, last: Observed): Promise<Observed> {
  // The API may be briefly busy: the table keeps the last figures rather than stopping.
  const [budget, leases] = await Promise.all([
    fleet.budget().catch(() => last.budget),
    fleet.leases().catch(() => last.leases),
  ]);
  return { budget, leases };
}

/** Runs the load for the duration (or until interrupted), drawing the table, and returns what happened. */
async function runLoad(fleet: LocalFleet, generator: LoadGenerator): Promise<Outcome> {
  const durationMs = options.durationSeconds * 1000;
  const plan: Phase[] = phases(durationMs, podNames, options.limit);
  const samples: Sample[] = [];
  const started = Date.now();
  let applied = 0;
  const sample = () => {
    // The sample shows the demand in force since the last one; then the schedule moves on.
    const counts = generator.counts();
    samples.push({
      elapsedMs: Date.now() - started,
      phaseIndex: applied,
      demand: counts.reduce((sum, c) => sum + c.demand, 0),
      open: counts.reduce((sum, c) => sum + c.open, 0),
      upstreamInUse: fleet.referee().inUse,
    });
    const { phase, index } = phaseAt(plan, Date.now() - started);
    generator.setDemand(phase.demand);
    applied = index;
  };
  generator.setDemand((plan[0] as Phase).demand);
  generator.start();
  const sampler = setInterval(sample, sampleEveryMs);
  let observed: Observed = { budget: undefined, leases: [] };
  const draw = () => {
    const elapsedMs = Date.now() - started;
    const { phase, index } = phaseAt(plan, elapsedMs);
    screen.draw(
      renderSnapshot({
        elapsedMs,
        durationMs,
        phase,
        phaseIndex: index,
        phaseCount: plan.length,
        limit: options.limit,
        budget: observed.budget,
        leases: observed.leases,
        load: generator.counts(),
        referee: fleet.referee(),
      }),
    );
  };
  try {
    while (interrupts === 0 && Date.now() - started < durationMs) {
      await pause(Math.min(redrawEveryMs, durationMs - (Date.now() - started)));
      if (interrupts > 0) break;
      checkProcesses(fleet);
      observed = await observe(fleet, observed);
      draw();
    }
  } finally {
    clearInterval(sampler);
  }
  const elapsedMs = Date.now() - started;

  // Hang up every call, then let the sidecars report the fleet drained so their counters are final.
  await generator.stop();
  const drainedBy = Date.now() + 5000;
  while (interrupts < 2 && Date.now() < drainedBy) {
    observed = await observe(fleet, observed);
    if (observed.leases.every((l) => (l.status?.inUse ?? 0) === 0)) break;
    await pause(250);
  }
  const counts = generator.counts();
  const sum = (pick: (c: (typeof counts)[number]) => number) => counts.reduce((n, c) => n + pick(c), 0);
  const refereeStats = fleet.emulator.stats().projects.fleet;
  const referee = fleet.referee();
  return {
    limit: options.limit,
    pods: options.pods,
    elapsedMs,
    interrupted: interrupts > 0,
    phases: plan,
    samples,
    referee: {
      peak: referee.peak,
      overLimitMoments: referee.overLimitMoments,
      rejected: Object.values(refereeStats?.rejected ?? {}).reduce((n, v) => n + (v ?? 0), 0),
    },
    upstreamRejected: observed.budget?.status?.upstreamRejectedTotal ?? 0,
    localRejected: observed.leases.reduce((n, l) => n + (l.status?.rejectedTotal ?? 0), 0),
    generator: {
      admitted: sum((c) => c.admitted),
      refused: sum((c) => c.refused),
      failed: sum((c) => c.failed),
      dropped: sum((c) => c.dropped),
    },
  };
}

async function main(): Promise<number> {
  let plane: ControlPlane | undefined;
  let fleet: LocalFleet | undefined;
  let generator: LoadGenerator | undefined;
  let code = 0;
  try {
    console.log(
      `sluice demo: ${options.pods} pods sharing a budget of ${options.limit} streams, ${options.durationSeconds} s of load`,
    );
    let since = Date.now();
    plane = await ControlPlane.start({ crds: crdManifests });
    console.log(`Control plane ready at ${plane.server} in ${seconds(since)}`);
    if (interrupts > 0) return 0;

    since = Date.now();
    fleet = await startFleet(plane, (created) => {
      fleet = created;
    });
    if (interrupts > 0) return 0;
    console.log(
      `Fleet ready in ${seconds(since)}: StreamBudget ${namespace}/${fleet.options.budgetName}, ${options.pods} sidecars, the operator, the referee at ${fleet.emulator.url}`,
    );
    console.log(
      `Watch it with kubectl: .cache/bin/kubectl --kubeconfig ${plane.kubeconfigPath} -n ${namespace} get streambudgets,streamleases\n`,
    );

    const running = fleet;
    generator = new LoadGenerator(
      podNames.map((name) => ({ name, url: running.pods.get(name)?.sidecar?.url as string })),
    );
    const outcome = await runLoad(running, generator);
    screen.print(`\n${renderSummary(outcome).join('\n')}`);
    if (outcome.referee.overLimitMoments > 0 || outcome.referee.peak > outcome.limit) code = 1;
  } catch (error) {
    code = 1;
    screen.print(`\nThe demo failed: ${(error as Error).message}`);
  } finally {
    const since = Date.now();
    await generator?.stop().catch(() => undefined);
    await fleet?.stop().catch((error: Error) => console.error(`Stopping the fleet failed: ${error.message}`));
    await plane?.stop().catch((error: Error) => console.error(`Stopping the control plane failed: ${error.message}`));
    if (plane) console.log(`\nStopped the load, the fleet and the control plane in ${seconds(since)}.`);
  }
  return code;
}

process.exit(await main());
