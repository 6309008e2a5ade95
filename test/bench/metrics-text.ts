/**
 * Counters read from Prometheus text (kube-apiserver's /metrics, the operator's): the
 * samples of one metric, summed over the labels that matter, and the change between two
 * readings.
 */

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of `metric` in Prometheus exposition text. */
export function samplesOf(text: string, metric: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== metric) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name as string] = value as string;
    }
    samples.push({ labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sums samples by the values of `keys`, joined by a space (missing labels count as ''). */
export function sumBy(samples: readonly Sample[], keys: readonly string[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const sample of samples) {
    const key = keys.map((k) => sample.labels[k] ?? '').join(' ');
    sums.set(key, (sums.get(key) ?? 0) + sample.value);
  }
  return sums;
}

/** What grew from `before` to `after`, by key; keys that did not grow are left out. */
export function growth(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): Map<string, number> {
  const grown = new Map<string, number>();
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0);
    if (delta > 0) grown.set(key, delta);
  }
  return grown;
}
