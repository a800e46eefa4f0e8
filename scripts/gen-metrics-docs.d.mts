// Types of scripts/gen-metrics-docs.mjs for the tests that import it.
export interface ScannedMetric {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  labels: string[];
  where: string;
}
export function collectMetrics(srcDir: string): ScannedMetric[];
export function unitOf(m: ScannedMetric): string;
export function renderMetricsDoc(metrics: readonly ScannedMetric[]): string;
