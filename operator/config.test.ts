import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OperatorConfigError, readOperatorConfig } from './config.js';

const problems = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  try {
    readOperatorConfig(argv, env);
    return '';
  } catch (error) {
    assert.ok(error instanceof OperatorConfigError);
    assert.equal(error.code, 'SLUICE_E_OPERATOR_CONFIG');
    return error.message;
  }
};

describe('operator configuration', () => {
  it('has defaults that follow controller-runtime', () => {
    const config = readOperatorConfig([], { POD_NAME: 'sluice-operator-7d9c', POD_NAMESPACE: 'sluice' });
    assert.equal(config.leaseDurationMs, 15_000);
    assert.equal(config.renewDeadlineMs, 10_000);
    assert.equal(config.retryPeriodMs, 2_000);
    assert.equal(config.identity, 'sluice-operator-7d9c');
    assert.equal(config.leaderElectionNamespace, 'sluice');
    assert.deepEqual(config.adminListen, { host: '0.0.0.0', port: 9090 });
    assert.equal(config.watchNamespace, undefined);
    assert.equal(config.staleGoneHoldSeconds, undefined);
  });

  it("halves a pod's dropped demand every 5 s by default, and holds vanished stale pods for the budget's maxStreamSeconds", () => {
    const config = readOperatorConfig([], {});
    assert.equal(config.demandHalfLifeSeconds, 5);
    assert.equal(config.staleGoneHoldSeconds, undefined);
    assert.equal(readOperatorConfig(['--demand-half-life-seconds=30'], {}).demandHalfLifeSeconds, 30);
  });

  it('takes flags over environment variables', () => {
    const config = readOperatorConfig(['--workers=2', '--watch-namespace', 'voice'], {
      SLUICE_OPERATOR_WORKERS: '8',
      SLUICE_STALE_GONE_HOLD_SECONDS: '120',
    });
    assert.equal(config.workers, 2);
    assert.equal(config.watchNamespace, 'voice');
    assert.equal(config.staleGoneHoldSeconds, 120);
  });

  it('names every problem, by flag or variable', () => {
    const message = problems(['--bogus', '--workers=0'], { SLUICE_OPERATOR_ADMIN_LISTEN: 'nowhere' });
    assert.match(message, /--bogus: unknown argument/);
    assert.match(message, /--workers: must be a number from 1 to 64; got "0"/);
    assert.match(message, /SLUICE_OPERATOR_ADMIN_LISTEN: must be host:port/);
  });

  it('refuses election timings that cannot work', () => {
    assert.match(
      problems([], { SLUICE_LEADER_ELECTION_LEASE_SECONDS: '5', SLUICE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS: '5' }),
      /renew deadline must be shorter than the lease/,
    );
  });
});
