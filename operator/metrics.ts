/**
 * The operator's Prometheus metrics, in a registry of its own. Names start with
 * sluice_operator_ and carry their unit; budgets are labelled namespace/name.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface BudgetFiguresMetric {
  limit: number;
  allocated: number;
  reserved: number;
  inUse: number;
  staleLeases: number;
}

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileSeconds: Histogram;
  readonly apiWrites: Counter<'kind' | 'result'>;
  readonly leader: Gauge;
  readonly queueDepth: Gauge;
  readonly #limit: Gauge<'budget'>;
  readonly #allocated: Gauge<'budget'>;
  readonly #reserved: Gauge<'budget'>;
  readonly #inUse: Gauge<'budget'>;
  readonly #stale: Gauge<'budget'>;

  constructor(queueLength: () => number = () => 0) {
    const registers = [this.registry];
    this.reconciles = new Counter({
      name: 'sluice_operator_reconciles_total',
      help: 'Budget reconciles by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
    this.reconcileSeconds = new Histogram({
      name: 'sluice_operator_reconcile_duration_seconds',
      help: 'Time to reconcile one budget.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.apiWrites = new Counter({
      name: 'sluice_operator_api_writes_total',
      help: 'Writes to the Kubernetes API by kind (lease_create, lease_grant, lease_release, budget_status, budget_finalizer, event) and result (ok, conflict, not_found, error).',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.leader = new Gauge({
      name: 'sluice_operator_leader',
      help: '1 while this replica leads, 0 while it stands by.',
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'sluice_operator_work_queue_depth',
      help: 'Budgets waiting to be reconciled.',
      registers,
      collect() {
        this.set(queueLength());
      },
    });
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['budget'], registers });
    this.#limit = gauge('sluice_operator_budget_limit_streams', "The budget's maxConcurrentStreams.");
    this.#allocated = gauge('sluice_operator_budget_allocated_streams', 'Streams granted to pods.');
    this.#reserved = gauge(
      'sluice_operator_budget_reserved_streams',
      'Streams reserved: grants not yet acknowledged, stale and gone pods included.',
    );
    this.#inUse = gauge('sluice_operator_budget_in_use_streams', 'Streams in use as the pods report them.');
    this.#stale = gauge('sluice_operator_budget_stale_leases', 'Leases without a report for a lease duration.');
  }

  budget(budget: string, figures: BudgetFiguresMetric): void {
    this.#limit.set({ budget }, figures.limit);
    this.#allocated.set({ budget }, figures.allocated);
    this.#reserved.set({ budget }, figures.reserved);
    this.#inUse.set({ budget }, figures.inUse);
    this.#stale.set({ budget }, figures.staleLeases);
  }

  forgetBudget(budget: string): void {
    for (const g of [this.#limit, this.#allocated, this.#reserved, this.#inUse, this.#stale]) g.remove({ budget });
  }
}
