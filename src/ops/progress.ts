/**
 * The replay progress bar (cli-progress): on stderr when it is a terminal, or wherever asked
 * (`--progress`); a no-op otherwise, so piped output stays clean.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Start (or restart) a phase with its total. */
  phase(name: string, total: number): void;
  update(value: number): void;
  stop(): void;
}

const NONE: Progress = { phase() {}, update() {}, stop() {} };

export function progressBar(stream: NodeJS.WritableStream & { isTTY?: boolean }, enabled: boolean): Progress {
  if (!enabled) return NONE;
  let bar: cliProgress.SingleBar | null = null;
  return {
    phase(name, total) {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        {
          format: `${name.padEnd(10)} [{bar}] {percentage}% | {value}/{total} cells | {duration_formatted}`,
          stream,
          noTTYOutput: !stream.isTTY,
          notTTYSchedule: 1000,
          hideCursor: null,
          barsize: 30,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0);
    },
    update(value) {
      bar?.update(value);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
